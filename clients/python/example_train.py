"""Trains a small conv net from a running shardtool server, with exact resume.

    shardtool serve --real data/cifar10-train --generated data/gen-1m --listen 127.0.0.1:7070 &
    python3 clients/python/example_train.py 127.0.0.1:7070 --steps 200 --checkpoint-every 50
    # interrupted? continue with exactly the batches an uninterrupted run gets:
    python3 clients/python/example_train.py 127.0.0.1:7070 --steps 200 --checkpoint-every 50 --resume

The checkpoint holds the model, the optimiser, the step and the sampler state
(ds.state_dict()); --resume loads all four. CPU is fine.
"""

import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from certmix_client import CertmixDataset  # noqa: E402


class SmallNet(nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def to_input(images):
    """uint8 NHWC (as served without normalisation) -> float NCHW in [0, 1];
    float32 NCHW (normalised by the server) passes through."""
    if images.dtype == torch.uint8:
        return images.permute(0, 3, 1, 2).float().div_(255)
    return images


def save(path, **ckpt):
    tmp = path + ".tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # a crash mid-save leaves the previous checkpoint


def main():
    p = argparse.ArgumentParser(description="train a small conv net from a shardtool server")
    p.add_argument("address", help="unix:/path/to.sock or host:port")
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--checkpoint", default="certmix_example.pt")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args()

    torch.manual_seed(0)
    ds = CertmixDataset(args.address, rank=args.rank)                       # changed line 1
    loader = DataLoader(ds, batch_size=None, num_workers=0)

    step, model, opt = 0, None, None
    ckpt = None
    if args.resume:
        ckpt = torch.load(args.checkpoint)
        ds.load_state_dict(ckpt["data"])                                     # changed line 2
        step = ckpt["step"]
        print("resuming at step %d (sampler step %d)" % (step, ckpt["data"]["step"]))

    start, seen = time.time(), 0
    for images, labels in loader:
        if step >= args.steps:
            break
        x = to_input(images)
        if model is None:  # the input's shape is known once the first batch is here
            model = SmallNet(x.shape[1], args.classes)
            opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
            if ckpt is not None:
                model.load_state_dict(ckpt["model"])
                opt.load_state_dict(ckpt["optim"])
        loss = F.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        seen += len(labels)
        if step % 10 == 0:
            print("step %d loss %.4f (%.0f images/s)" % (step, loss.item(), seen / (time.time() - start)))
        if step % args.checkpoint_every == 0 or step == args.steps:
            save(args.checkpoint, model=model.state_dict(), optim=opt.state_dict(), step=step,
                 data=ds.state_dict())                                       # changed line 3
            print("checkpoint at step %d -> %s" % (step, args.checkpoint))


if __name__ == "__main__":
    main()
