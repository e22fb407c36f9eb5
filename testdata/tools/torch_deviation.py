"""How far PyTorch, in float32 on the CPU, lands from the reference files of
testdata/ (README.md there): the yardstick for the per-element tolerance
exceptions of trainer/reference_test.go (elemFloor).

It recomputes, from the same weights, power-iteration vectors and inputs as
the reference, the arrays that trainer's reference tests compare:

  liresnet_ref_L2W16.npz  every grad/<name> of the EMMA loss, with K from 500
                          power iterations: train_gloro.py's GloroNet (which
                          reproduces the file to 1e-9 in float64, see
                          clients/python/tests/test_train_gloro.py)
  linfdist_ref_D3W32.npz  the p = 8 training-mode gradients of the hinge loss
                          (fc_dist.1.weight split into its diagonal and the
                          rest, as the Go test splits it) and the interval
                          bound margins at eps_test and eps_small, with the
                          l_inf-dist repository's pure-PyTorch path (the
                          max-normalised p-norm distance, the mean shift with
                          the batch mean, the interval bounds of an l_inf
                          distance) written out below

and prints, per array, the measures the Go test's relClose applies:

  rel        ||got - want|| / ||want||
  abs        max |got - want| / max |want|
  elem@F     max over elements of |got - want| / (|want| + F max |want|) for
             F = 1e-2 (the default floor), 1e-1 and 1; relClose fails an
             element when this exceeds the tolerance tol, so elem@F / tol is
             the "multiple of the tolerance" the elemFloor comment quotes

  python3 testdata/tools/torch_deviation.py              # float32, a table
  python3 testdata/tools/torch_deviation.py --dtype float64   # checks this script: about 1e-9 everywhere
  python3 testdata/tools/torch_deviation.py --json       # what trainer's TestElemFloorsAgainstPyTorch reads (with float64 too)
  python3 testdata/tools/torch_deviation.py --json --exact-npz F   # and F: the float64 exact LiResNet gradients

It prints the LiResNet gradients twice. "shipped" is the authors' code as the
reference file holds it, whose power iterations move their start vector in
place, so that the backward pass of the first iteration reads the last iterate
instead of the vector the forward pass used (train_gloro._advance explains
it). "exact" is the same computation with that write kept out of the saved
tensor: the gradient of K as computed, which is what certmix's Go trainer
backpropagates. The difference between the two, up to 5e-3 relative on a
block's kernel gradient, is there in float64 as much as in float32.

Run from anywhere; it finds testdata/ and clients/python/ next to itself.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(os.path.dirname(TESTDATA), "clients", "python"))

import train_gloro as tg  # noqa: E402

FLOORS = (1e-2, 1e-1, 3e-1, 1.0)


def measure(got, want):
    got = np.asarray(got, np.float64).ravel()
    want = np.asarray(want, np.float64).ravel()
    d = np.abs(got - want)
    largest = np.abs(want).max()
    out = {"rel": float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)),
           "abs": float(d.max() / max(largest, 1e-300))}
    for f in FLOORS:
        out["elem@%g" % f] = float((d / (np.abs(want) + f * largest)).max())
    return out


def _advance_elsewhere(vector, x):
    """train_gloro._advance without its in-place write: the vector moves to
    new storage, so the first iteration's backward reads the start vector it
    was computed from."""
    vector.data = vector.data + (x - vector).detach()


def liresnet(dtype, exact=False, grads=None):
    """The LiResNet gradients. exact=False is the authors' code as shipped
    (and as the reference holds): the start vectors move in place after the
    500 iterations, so the first iteration's weight gradient reads the last
    iterate v_500 where the forward pass read v_0. exact=True keeps v_0 there,
    the gradient of K as computed, which certmix's trackedPI
    (trainer/models/powergrad.go) backpropagates."""
    saved = tg._advance
    if exact:
        tg._advance = _advance_elsewhere
    try:
        return _liresnet(dtype, grads)
    finally:
        tg._advance = saved


def _liresnet(dtype, grads=None):
    ref = np.load(os.path.join(TESTDATA, "liresnet_ref_L2W16.npz"))
    torch.manual_seed(0)
    m = tg.GloroNet(2, 16, classes=10, channels=3).to(dtype)
    state = {k[len("state/"):]: torch.from_numpy(ref[k]).to(dtype) for k in ref.files if k.startswith("state/")}
    m.load_state_dict(state, strict=True)
    k = m.sub_lipschitz(500)
    logits = m(torch.from_numpy(ref["input"]).to(dtype))
    loss = tg.emma_loss(logits, torch.from_numpy(ref["label"]), m.head_rows(), k, float(ref["eps"]))
    m.zero_grad()
    loss.backward()
    out = {}
    for name, p in m.named_parameters():
        out["grad/" + name] = measure(p.grad.numpy(), ref["grad/" + name])
        if grads is not None:
            grads["grad/" + name] = p.grad.numpy()
    return out


def norm_dist(x, w, p):
    """The l_p distance of every row of x (B, in) to every row of w (out, in),
    as the l_inf-dist repository's pure-PyTorch norm_dist computes it: divided
    by the largest |x_i - w_i| (a constant for autograd) before the p-norm."""
    y = x.unsqueeze(1) - w.unsqueeze(0)
    if p == float("inf"):
        return y.abs().amax(dim=2)
    with torch.no_grad():
        scale = y.abs().amax(dim=2, keepdim=True)
    return (torch.norm(y / scale, dim=2, p=p, keepdim=True) * scale).squeeze(2)


def bound_inf_dist(lo, hi, w):
    """Lower and upper bounds of the l_inf distance to w over the box [lo, hi]."""
    x1 = w.unsqueeze(0) - lo.unsqueeze(1)
    x2 = hi.unsqueeze(1) - w.unsqueeze(0)
    z1 = torch.maximum(x1, x2).clamp(min=1e-10)
    z2 = torch.minimum(x1, x2).clamp(max=-1e-10)
    return (-z2).amax(dim=2), z1.amax(dim=2)


def linf_dist(dtype):
    ref = np.load(os.path.join(TESTDATA, "linfdist_ref_D3W32.npz"))

    def state(prefix, grad):
        s = {}
        for i in range(3):
            w = torch.from_numpy(ref["%sfc_dist.%d.weight" % (prefix, i)]).to(dtype)
            s["fc_dist.%d.weight" % i] = w.requires_grad_(grad)
            if i < 2:
                s["rm%d" % i] = torch.from_numpy(ref["%sfc_dist.%d.mean_shift.running_mean" % (prefix, i)]).to(dtype)
        s["fc_dist.2.bias"] = torch.from_numpy(ref[prefix + "fc_dist.2.bias"]).to(dtype).requires_grad_(grad)
        return s

    x = torch.from_numpy(ref["input"]).to(dtype).reshape(16, -1)
    labels = torch.from_numpy(ref["label"])
    out = {}

    # Training mode, p = 8: the mean shift subtracts the batch mean of each unit.
    s = state("state_before/", True)
    h = x
    for i in range(2):
        d = norm_dist(h, s["fc_dist.%d.weight" % i], 8.0)
        h = d - d.mean(dim=0)
    g = -(norm_dist(h, s["fc_dist.2.weight"], 8.0) + s["fc_dist.2.bias"])
    eps = float(ref["eps_train"])
    margin = (g - g.gather(1, labels.view(-1, 1)) + 2 * eps) / (2 * eps)
    margin = margin.scatter(1, labels.view(-1, 1), 0)
    r = F.relu(margin)
    loss = 0.75 * r.max(dim=1)[0].mean() + 0.25 * r.mean()
    loss.backward()
    for name in ("fc_dist.0.weight", "fc_dist.2.weight", "fc_dist.2.bias"):
        out["grad_p8/" + name] = measure(s[name].grad.numpy(), ref["grad_p8/" + name])
    got, want = s["fc_dist.1.weight"].grad.numpy(), ref["grad_p8/fc_dist.1.weight"]
    diag = np.eye(32, dtype=bool)
    out["grad_p8/fc_dist.1.weight diagonal"] = measure(got[diag], want[diag])
    out["grad_p8/fc_dist.1.weight off the diagonal"] = measure(got[~diag], want[~diag])

    # Evaluation mode, p = inf, the running means after that step; interval
    # bounds through the network with the input box clipped to [box_down, box_up].
    s = state("state_after/", False)
    down, up = float(ref["box_down"]), float(ref["box_up"])
    for tag in ("eps_test", "eps_small"):
        e = float(ref[tag])
        lo, hi = torch.clamp(x - e, min=down), torch.clamp(x + e, max=up)
        for i in range(2):
            dlo, dhi = bound_inf_dist(lo, hi, s["fc_dist.%d.weight" % i])
            lo, hi = dlo - s["rm%d" % i], dhi - s["rm%d" % i]
        dlo, dhi = bound_inf_dist(lo, hi, s["fc_dist.2.weight"])
        b = s["fc_dist.2.bias"]
        glo, ghi = -(dhi + b), -(dlo + b)  # logits are minus the distances
        m = (ghi - glo.gather(1, labels.view(-1, 1))) / (2 * e)
        keep = torch.ones_like(m, dtype=torch.bool).scatter(1, labels.view(-1, 1), False)
        want = ref["eval_inf_ibp_margin_" + tag]
        out["eval_inf_ibp_margin_" + tag] = measure(m[keep].numpy(), want[keep.numpy()])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--json", action="store_true", help="one JSON object: array name -> measures")
    ap.add_argument("--exact-npz", metavar="PATH",
                    help="also write the LiResNet gradients of K as computed (exact), in float64, to PATH (np.savez)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.exact_npz:
        grads = {}
        liresnet(torch.float64, exact=True, grads=grads)
        np.savez(args.exact_npz, **grads)
    dtype = getattr(torch, args.dtype)
    shipped = liresnet(dtype)
    shipped.update(linf_dist(dtype))
    out = {"shipped": shipped, "exact": liresnet(dtype, exact=True)}
    if args.json:
        # The same computation in float64, which must reproduce the files:
        # the check that this script computes what the authors' code did.
        out["float64"] = liresnet(torch.float64)
        out["float64"].update(linf_dist(torch.float64))
        json.dump(out, sys.stdout, indent=1, sort_keys=True)
        print()
        return
    cols = ["rel", "abs"] + ["elem@%g" % f for f in FLOORS]
    for variant, title in (("shipped", "as the reference computes them"),
                           ("exact", "LiResNet, the first iteration reading v_0 (certmix's gradient)")):
        print("PyTorch %s, %s" % (args.dtype, title))
        print("%-44s" % "array" + "".join("%11s" % c for c in cols))
        for name, m in out[variant].items():
            print("%-44s" % name + "".join("%11.2e" % m[c] for c in cols))


if __name__ == "__main__":
    main()
