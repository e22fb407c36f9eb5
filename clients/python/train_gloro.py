"""GloroNet (LiResNet + EMMA loss) trainer in PyTorch, fed by a certmix batch server.

This is certmix's reference external trainer: ``certmix sweep`` runs it in a
cell whose grid names it (``trainer: {command: [python3,
clients/python/train_gloro.py], arch: gloro}``), with the environment that
docs/external-trainers.md describes (CERTMIX_SOCKET, CERTMIX_RANK,
CERTMIX_WORLD_SIZE, CERTMIX_OUT, CERTMIX_EPOCHS, CERTMIX_RESUME_CHECKPOINT,
...). Every setting can also be given as a flag, so it runs by hand against
``shardtool serve`` too.

The model and the loss are the LiResNet snapshot's (Hu et al. 2023,
hu23_snapshot.zip in klasleino/gloro): stem conv 5x5 stride 2, D LinearRes
blocks (kernel identity + weight * affine / sqrt(D)), neck conv 4x4 stride 4,
linear to 512, MinMax activations, a row-normalised head; K, the Lipschitz
bound of everything below the head, from power iterations whose vectors are
buffers (``init_x``, and ``init_layer`` for the blocks, iterated together);
the EMMA loss is the cross-entropy of ``logits + K * eps * ||w_y - w_j||``.
The state dict has the authors' names and layouts, so ``certmix import``
reads what this trainer saves, and the hyperparameters are certmix's presets
(trainer/presets.go): AdamW 1e-3 with weight decay 1e-4, linear warm-up then
cosine per iteration, gradient clipping at 3, 10 power iterations a step,
eps 36/255 ramped from 0.1x to 1.5x over the first half.

Files it writes into CERTMIX_OUT (the cell's train/ directory):

    checkpoint.pt          model, optimiser, step, every rank's sampler state (rank 0; atomic)
    sampler-rankR.json     this rank's sampler state at that checkpoint
    batches-rankR.jsonl    {"step", "epoch", "ids"} for every batch this rank trained on
    metrics.jsonl          one line per epoch: train loss, clean test accuracy, ...
    state_dict.npz         the final state dict under the authors' names (np.savez)

Several ranks (CERTMIX_WORLD_SIZE > 1) average their gradients with
torch.distributed (gloo on the CPU, nccl on GPUs; MASTER_ADDR/MASTER_PORT
from the environment), each reading its own rank's stream.
"""

import argparse
import io
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import certmix_client as cm  # noqa: E402

# The GloroNet presets of trainer/presets.go (a Go test checks that they agree).
_GLORO = dict(batch=256, epochs=800, lr=1e-3, weight_decay=1e-4, clip=3.0, warmup_epochs=20,
              eps=36.0 / 255, power_iters=10, beta1=0.9, beta2=0.999, adam_eps=1e-8, crop_pad=4)
PRESETS = {
    "gloro-xs": dict(_GLORO, depth=6, width=128),
    "gloro-s": dict(_GLORO, depth=12, width=128),
    "gloro-m": dict(_GLORO, depth=18, width=128),
    "gloro-l": dict(_GLORO, depth=18, width=256),
}

FEATURES = 512
SIZE = 32  # the network's input side; smaller images are zero-padded at the centre, as certmix does


def min_max(x):
    """MinMax: the elementwise max and min of the two halves of the channels."""
    a, b = torch.split(x, x.shape[1] // 2, dim=1)
    hi = torch.max(a, b)
    return torch.cat([hi, a + b - hi], dim=1)


def _advance(vector, x):
    """Moves a power-iteration vector to the last iterate, in place, as the
    authors' code does (``init_x += (x - init_x).detach()`` after starting
    from ``init_x.data``). The first iteration's input is that very storage,
    so the backward pass sees the moved vector where the first iteration
    read the old one: the shipped gradient, which the reference file holds
    and this trainer therefore reproduces (the difference is about 1e-4
    relative on the stem's gradient after 500 iterations, smaller after 10).
    """
    vector += (x - vector).detach()


class PowerConv(nn.Module):
    """A convolution with a power-iteration start vector ``init_x`` for its
    spectral norm on inputs of in_size x in_size."""

    def __init__(self, cin, cout, k, stride, pad, in_size):
        super().__init__()
        self.stride, self.pad = stride, pad
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        nn.init.orthogonal_(self.weight)
        bound = 1 / math.sqrt(cin * k * k)
        nn.init.uniform_(self.bias, -bound, bound)
        self.register_buffer("init_x", torch.randn(1, cin, in_size, in_size))
        self.output_padding = stride + 2 * pad - k

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.pad)

    def lipschitz(self, iters):
        w = self.weight
        x = self.init_x.data  # see _advance
        for _ in range(iters):
            x = F.conv2d(x, w, stride=self.stride, padding=self.pad)
            x = F.conv_transpose2d(x, w, stride=self.stride, padding=self.pad, output_padding=self.output_padding)
            x = F.normalize(x, dim=(1, 2, 3))
        _advance(self.init_x, x)
        return F.conv2d(x, w, stride=self.stride, padding=self.pad).norm()


class PowerLinear(nn.Module):
    """A linear layer with a power-iteration start vector ``init_x``."""

    def __init__(self, fin, fout):
        super().__init__()
        lin = nn.Linear(fin, fout)  # PyTorch's default initialisation
        self.weight = nn.Parameter(lin.weight.detach().clone())
        self.bias = nn.Parameter(lin.bias.detach().clone())
        self.register_buffer("init_x", torch.randn(1, fin))

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def lipschitz(self, iters):
        x = self.init_x.data  # see _advance
        for _ in range(iters):
            x = F.normalize(F.linear(F.linear(x, self.weight), self.weight.t()), dim=1)
        _advance(self.init_x, x)
        return F.linear(x, self.weight).norm()


class LinearRes(nn.Module):
    """LiResNet's block: one 3x3 convolution of kernel identity + weight * affine / sqrt(depth)."""

    def __init__(self, width, depth, in_size):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(width, width, 3, 3) / (width * 9))
        self.affine = nn.Parameter(torch.ones(width, 1, 1, 1))
        self.bias = nn.Parameter(torch.zeros(width))
        identity = torch.zeros(width, width, 3, 3)
        identity[:, :, 1, 1] = torch.eye(width)
        self.register_buffer("identity", identity)
        self.register_buffer("init_x", torch.randn(1, width, in_size, in_size))
        self.scale = depth ** -0.5

    def kernel(self):
        return self.identity + self.weight * self.affine * self.scale

    def forward(self, x):
        return F.conv2d(x, self.kernel(), self.bias, padding=1)


class _Activation(nn.Module):
    """MinMax as a module, so that module indices count it as the authors' do."""

    def forward(self, x):
        return min_max(x)


class _Flatten(nn.Module):
    def forward(self, x):
        return x.flatten(1)


class GloroNet(nn.Module):
    """LiResNet L{depth}W{width} for channels x 32 x 32 inputs in [0, 1]."""

    def __init__(self, depth, width, classes=10, channels=3):
        super().__init__()
        if depth < 1 or width < 2 or width % 2:
            raise ValueError("GloroNet L%dW%d: depth >= 1 and an even width >= 2" % (depth, width))
        self.depth, self.width = depth, width
        self.stem = nn.Sequential(PowerConv(channels, width, 5, 2, 2, SIZE), _Activation())
        blocks = []
        for _ in range(depth):
            blocks += [LinearRes(width, depth, SIZE // 2), _Activation()]
        self.backbone = nn.Sequential(*blocks)
        self.neck = nn.Sequential(PowerConv(width, 2 * width, 4, 4, 0, SIZE // 2), _Activation(), _Flatten(),
                                  PowerLinear(2 * width * (SIZE // 8) ** 2, FEATURES), _Activation())
        self.head = nn.Linear(FEATURES, classes)
        # The blocks' power iterations run together (one group of width channels per block).
        self.register_buffer("init_layer", torch.randn(1, depth * width, SIZE // 2, SIZE // 2))

    def head_rows(self):
        return F.normalize(self.head.weight, dim=1)

    def forward(self, x):
        x = self.neck(self.backbone(self.stem(x - 0.5)))
        return F.linear(x, self.head_rows(), self.head.bias)

    def blocks_lipschitz(self, iters):
        """The product of the blocks' spectral norms, iterated as one grouped convolution."""
        w = torch.cat([m.kernel() for m in self.backbone if isinstance(m, LinearRes)], dim=0)
        groups, planes = self.depth, self.width

        def group_norms(x):
            return x.pow(2).sum((0, 2, 3)).reshape(groups, -1).sum(1).sqrt()

        x = self.init_layer.data  # see _advance
        for _ in range(iters):
            x = F.conv_transpose2d(F.conv2d(x, w, padding=1, groups=groups), w, padding=1, groups=groups)
            norm = group_norms(x).reshape(groups, 1).expand(groups, planes)
            x = x / norm.reshape(1, -1, 1, 1).clamp_min(1e-10)
        _advance(self.init_layer, x)
        return group_norms(F.conv2d(x, w, padding=1, groups=groups)).prod()

    def sub_lipschitz(self, iters):
        """K: the Lipschitz bound of the map from image to the head's input,
        differentiable through the iterations; the vectors move on."""
        return (self.stem[0].lipschitz(iters) * self.blocks_lipschitz(iters) * self.neck[0].lipschitz(iters)
                * self.neck[3].lipschitz(iters))


def emma_loss(logits, labels, head_rows, k, eps):
    """GloroNet's training loss as shipped: cross-entropy of every non-target
    logit pushed up by eps * K * ||w_y - w_j||."""
    dist = (head_rows[labels].unsqueeze(1) - head_rows.unsqueeze(0)).norm(dim=-1)
    return F.cross_entropy(logits + k * eps * dist, labels)


def eps_ramp(eps, epoch, epochs):
    """The training eps at epoch e of E: 0.1 eps to 1.5 eps over the first half."""
    return eps * (0.1 + 1.4 * min(2 * epoch / max(epochs, 1), 1))


def learning_rate(lr0, i, warmup, total):
    """Step i (from 1): linear warm-up over warmup steps, then cosine down to 1e-5 lr0."""
    if i < warmup:
        return lr0 * i / warmup
    t = (i - warmup) / max(total - warmup, 1)
    return lr0 * max(1e-5, 0.5 * (1 + math.cos(math.pi * t)))


def to_input(images, device):
    """uint8 NHWC -> float NCHW in [0, 1], zero-padded at the centre to 32 x 32."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255)
    h, w = x.shape[2], x.shape[3]
    if h > SIZE or w > SIZE:
        raise ValueError("images of %dx%d: this GloroNet takes at most %dx%d" % (h, w, SIZE, SIZE))
    if h < SIZE or w < SIZE:
        oy, ox = (SIZE - h) // 2, (SIZE - w) // 2
        x = F.pad(x, (ox, SIZE - w - ox, oy, SIZE - h - oy))
    return x


def save_atomic(path, write):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_state_dict(model, path):
    """The state dict under the authors' names, float32, with np.savez."""
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    save_atomic(path, lambda f: np.savez(f, **arrays))


def env(name, default=None):
    v = os.environ.get(name, "")
    return v if v != "" else default


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="GloroNet trainer fed by a certmix batch server (see docs/external-trainers.md)")
    p.add_argument("--preset", default=env("CERTMIX_PRESET", "gloro-xs"), choices=sorted(PRESETS))
    p.add_argument("--depth", type=int, help="blocks (default: the preset's)")
    p.add_argument("--width", type=int, help="channels (default: the preset's)")
    p.add_argument("--epochs", type=int, default=int(env("CERTMIX_EPOCHS", 0)), help="default: CERTMIX_EPOCHS, else the preset's")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    p.add_argument("--seed", type=int, default=int(env("CERTMIX_SEED", 0)), help="initialisation seed (default: CERTMIX_SEED)")
    p.add_argument("--classes", type=int, default=int(env("CERTMIX_CLASSES", 10)))
    p.add_argument("--socket", default=env("CERTMIX_SOCKET"), help="the training batches' server (default: CERTMIX_SOCKET)")
    p.add_argument("--test-socket", default=env("CERTMIX_TEST_SOCKET"), help="the test set's server: one batch of every test image (default: CERTMIX_TEST_SOCKET)")
    p.add_argument("--out", default=env("CERTMIX_OUT"), help="output directory (default: CERTMIX_OUT)")
    p.add_argument("--checkpoint-every", type=int, default=int(env("CERTMIX_CHECKPOINT_EVERY", 0)), help="steps between checkpoints (default: every epoch)")
    p.add_argument("--eval-chunk", type=int, default=256, help="test images per forward pass")
    p.add_argument("--device", default=None, help="default: cuda:LOCAL_RANK when CUDA is available, else cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps of this process (benchmarks)")
    p.add_argument("--print-config", action="store_true", help="print the hyperparameters as JSON and exit")
    a = p.parse_args(argv)
    cfg = dict(PRESETS[a.preset])
    for k in ("depth", "width", "lr"):
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    if a.epochs > 0:
        cfg["epochs"] = a.epochs
    # certmix train's rule for short runs: 20 warm-up epochs of 800, at least one.
    cfg["warmup_epochs"] = min(cfg["warmup_epochs"], max(cfg["epochs"] // 40, 1))
    return a, cfg


class Ranks:
    """This process's rank and the gradient averaging over all ranks."""

    def __init__(self, device):
        self.rank = int(env("CERTMIX_RANK", env("RANK", 0)))
        self.world = int(env("CERTMIX_WORLD_SIZE", env("WORLD_SIZE", 1)))
        self.dist = None
        if self.world > 1:
            import torch.distributed as dist
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=self.rank, world_size=self.world)
            self.dist = dist

    def average(self, params):
        if self.dist is None:
            return
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.dist.all_reduce(flat)
        flat /= self.world
        i = 0
        for g in grads:
            g.copy_(flat[i:i + g.numel()].view_as(g))
            i += g.numel()

    def gather(self, obj):
        if self.dist is None:
            return [obj]
        out = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def total(self, values):
        """Sums a list of floats over the ranks."""
        t = torch.tensor(values, dtype=torch.float64)
        if self.dist is not None:
            self.dist.all_reduce(t)
        return t.tolist()

    def barrier(self):
        if self.dist is not None:
            self.dist.barrier()

    def close(self):
        if self.dist is not None:
            self.dist.destroy_process_group()


def evaluate(model, address, chunk, device, dtype, eps):
    """Clean accuracy and certified accuracy at eps (K from 500 power
    iterations, the vectors put back afterwards) on the test server's single
    batch, which holds every test image once."""
    with cm.connect(address, rank=0) as conn:
        b = conn.read_batch(copy=True)
    n = len(b.labels)
    if len(np.unique(b.ids)) != n:
        raise cm.CertmixError("test server: the batch repeats images; it must hold each test image once")
    saved = [buf.detach().clone() for buf in model.buffers()]
    with torch.no_grad():
        k = model.sub_lipschitz(500).item()
        for buf, s in zip(model.buffers(), saved):
            buf.copy_(s)
        rows = model.head_rows()
        correct = certified = 0
        labels = torch.from_numpy(b.labels.astype(np.int64)).to(device)
        for lo in range(0, n, chunk):
            x = to_input(b.images[lo:lo + chunk], device).to(dtype)
            y = model(x)
            pred = y.argmax(1)
            dist = (rows[pred].unsqueeze(1) - rows.unsqueeze(0)).norm(dim=-1)
            bottom = (y + k * eps * dist).scatter(1, pred.view(-1, 1), float("-inf")).max(1)[0]
            top = y.gather(1, pred.view(-1, 1)).squeeze(1)
            ok = pred.eq(labels[lo:lo + chunk])
            correct += int(ok.sum())
            certified += int((ok & (top > bottom)).sum())
    return correct, certified, n, k


def main(argv=None):
    a, cfg = parse_args(argv)
    if a.print_config:
        print(json.dumps(cfg, sort_keys=True))
        return 0
    if not a.socket or not a.out:
        raise SystemExit("train_gloro.py: no batch server or output directory: set CERTMIX_SOCKET and CERTMIX_OUT (or --socket, --out)")
    local_rank = int(env("CERTMIX_LOCAL_RANK", env("LOCAL_RANK", 0)))
    if a.device:
        device = torch.device(a.device)
    elif torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dtype = getattr(torch, a.dtype)
    ranks = Ranks(device)
    rank = ranks.rank
    os.makedirs(a.out, exist_ok=True)
    ckpt_path = env("CERTMIX_CHECKPOINT", os.path.join(a.out, "checkpoint.pt"))
    sampler_path = env("CERTMIX_SAMPLER_STATE", os.path.join(a.out, "sampler-rank%d.json" % rank))
    state_dict_path = env("CERTMIX_STATE_DICT", os.path.join(a.out, "state_dict.npz"))
    ids_path = os.path.join(a.out, "batches-rank%d.jsonl" % rank)
    metrics_path = os.path.join(a.out, "metrics.jsonl")

    resume = env("CERTMIX_RESUME_CHECKPOINT")
    ckpt = torch.load(resume, map_location="cpu") if resume else None
    step = ckpt["step"] if ckpt else 0
    sampler_state = ckpt["samplers"][rank] if ckpt else None
    if ckpt and ckpt["world_size"] != ranks.world:
        raise SystemExit("train_gloro.py: %s was written by %d ranks, this run has %d" % (resume, ckpt["world_size"], ranks.world))

    conn = cm.connect(a.socket, rank=rank, state=sampler_state)
    info = conn.info
    spe = info["steps_per_epoch"]
    total = cfg["epochs"] * spe
    torch.manual_seed(a.seed)
    model = GloroNet(cfg["depth"], cfg["width"], a.classes, info["channels"]).to(device=device, dtype=dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["adam_eps"],
                            weight_decay=cfg["weight_decay"])
    if ckpt:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        # The batches seen after the checkpoint are seen again: drop their lines.
        if os.path.exists(ids_path):
            with open(ids_path) as f:
                keep = [l for l in f if l.strip() and json.loads(l)["step"] < step]
            save_atomic(ids_path, lambda f: f.write("".join(keep).encode()))
        print("rank %d: resuming at step %d of %d from %s" % (rank, step, total, resume), flush=True)
    if info["step"] != step:
        raise SystemExit("train_gloro.py: the server resumes at step %d, the checkpoint is at step %d" % (info["step"], step))
    print("rank %d of %d on %s: GloroNet L%dW%d, %d classes, %d channels, %d epochs of %d steps, batch %d per rank, %s"
          % (rank, ranks.world, device, cfg["depth"], cfg["width"], a.classes, info["channels"], cfg["epochs"], spe,
             info["batch"], "quotas %s" % info["quotas"]), flush=True)
    params = list(model.parameters())
    warmup = cfg["warmup_epochs"] * spe
    every = a.checkpoint_every if a.checkpoint_every > 0 else spe
    ids_log = open(ids_path, "a")
    loss_sum = images = 0.0
    start = t0 = time.time()
    done_here = images_here = 0
    try:
        while step < total:
            b = conn.read_batch()
            if b.step != step:
                raise SystemExit("train_gloro.py: got the batch of step %d, want step %d" % (b.step, step))
            epoch = step // spe
            ids_log.write(json.dumps({"step": step, "epoch": epoch, "ids": b.ids.tolist()}) + "\n")
            x = to_input(b.images, device).to(dtype)
            labels = torch.from_numpy(b.labels.astype(np.int64)).to(device)
            state = b.state
            lr = learning_rate(cfg["lr"], step + 1, warmup, total)
            for g in opt.param_groups:
                g["lr"] = lr
            eps = eps_ramp(cfg["eps"], epoch, cfg["epochs"])
            opt.zero_grad(set_to_none=False)
            k = model.sub_lipschitz(cfg["power_iters"])
            loss = emma_loss(model(x), labels, model.head_rows(), k, eps)
            loss.backward()
            ranks.average(params)
            torch.nn.utils.clip_grad_norm_(params, cfg["clip"])
            opt.step()
            step += 1
            done_here += 1
            images_here += len(labels)
            loss_sum += loss.item()
            images += len(labels)
            epoch_end = step % spe == 0
            if epoch_end or step % every == 0:
                ids_log.flush()
                os.fsync(ids_log.fileno())
                save_atomic(sampler_path, lambda f: f.write(json.dumps({"step": step, "state": state}).encode()))
                states = ranks.gather(state)
                if rank == 0:
                    buf = io.BytesIO()
                    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                "samplers": states, "world_size": ranks.world}, buf)
                    save_atomic(ckpt_path, lambda f: f.write(buf.getvalue()))
                ranks.barrier()
            if epoch_end:
                seen = ranks.total([images, loss_sum])
                rec = {"epoch": epoch, "step": step, "train_loss": seen[1] / (spe * ranks.world), "lr": lr,
                       "eps_train": eps, "k": k.item(), "images_per_s": seen[0] / (time.time() - start)}
                if rank == 0 and a.test_socket:
                    correct, certified, n, k500 = evaluate(model, a.test_socket, a.eval_chunk, device, dtype, cfg["eps"])
                    rec.update(test_clean=correct / n, test_correct=correct, test_total=n, test_certified=certified / n, k500=k500)
                if rank == 0:
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    print("epoch %d: %s" % (epoch, json.dumps(rec)), flush=True)
                    if "test_clean" in rec:
                        print("clean test accuracy: %.4f (%d of %d)" % (rec["test_clean"], rec["test_correct"], n), flush=True)
                loss_sum = images = 0.0
                start = time.time()
            if a.max_steps and done_here >= a.max_steps:
                print("rank %d: stopped after %d steps (--max-steps): %d images in %.1f s, %.1f images/s"
                      % (rank, done_here, images_here, time.time() - t0, images_here / (time.time() - t0)), flush=True)
                return 0
        if rank == 0:
            save_state_dict(model, state_dict_path)
            print("state dict -> %s" % state_dict_path, flush=True)
        ranks.barrier()
    finally:
        ids_log.close()
        conn.close()
    ranks.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
