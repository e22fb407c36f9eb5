"""Reads batches from a certmix server and dumps them for sampler/serve's Go
tests (python_test.go), which compare them with the Go iterator's.

Dump format, per batch: a uint32 (little-endian) length, that many bytes of
JSON meta ({"step", "epoch", "shape", "dtype", "has_ids", "state"}), then the
raw images, the labels (int64), and, when has_ids, the ids (int64) and the
sources (uint8).

--via conn reads with connect/read_batch (ids and sources included);
--via dataset reads (images, labels) tensors through
DataLoader(CertmixDataset(...), batch_size=None, num_workers=0).
--pause-after K prints {"paused": K} after K batches and waits for a line
on stdin before reading on. --bad-rank R first checks that connecting as
rank R raises CertmixError, and prints {"bad_rank_error": message}.
"""

import argparse
import json
import struct
import sys

import numpy as np

import certmix_client as cm


def write_batch(out, meta, images, labels, ids=None, sources=None):
    meta = dict(meta, has_ids=ids is not None)
    data = json.dumps(meta).encode()
    out.write(struct.pack("<I", len(data)))
    out.write(data)
    out.write(np.ascontiguousarray(images).tobytes())
    out.write(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    if ids is not None:
        out.write(np.ascontiguousarray(ids, dtype="<i8").tobytes())
        out.write(np.ascontiguousarray(sources, dtype=np.uint8).tobytes())


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def pause(args, n):
    if args.pause_after is not None and n == args.pause_after:
        say({"paused": n})
        if not sys.stdin.readline():
            raise SystemExit("stdin closed while paused")


def via_conn(args, state, out):
    with cm.connect(args.address, rank=args.rank, state=state) as conn:
        info = conn.info
        want_dtype = {"uint8": np.uint8, "float32": np.float32}[info["dtype"]]
        last = state
        for n in range(args.batches):
            pause(args, n)
            b = conn.read_batch()
            assert b.images.dtype == want_dtype, (b.images.dtype, info)
            assert b.images.shape[0] == info["batch"] == len(b.labels) == len(b.ids) == len(b.sources)
            assert b.labels.dtype == np.int64 and b.ids.dtype == np.int64 and b.sources.dtype == np.uint8
            assert b.state["step"] == b.step + 1, (b.state, b.step)
            write_batch(out, {"step": b.step, "epoch": b.epoch, "shape": list(b.images.shape), "dtype": str(b.images.dtype),
                              "state": b.state}, b.images, b.labels, b.ids, b.sources)
            last = b.state
        return last, info


def via_dataset(args, state, out):
    import torch
    from torch.utils.data import DataLoader

    ds = cm.CertmixDataset(args.address, rank=args.rank)
    if state is not None:
        ds.load_state_dict(state)
    loader = DataLoader(ds, batch_size=None, num_workers=0)
    n = 0
    for images, labels in loader:
        assert isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor)
        assert images.dtype in (torch.uint8, torch.float32) and labels.dtype == torch.int64, (images.dtype, labels.dtype)
        assert images.is_contiguous() and images.shape[0] == labels.shape[0] == ds.info["batch"]
        st = ds.state_dict()
        json.dumps(st)  # JSON-serialisable, for the checkpoint
        write_batch(out, {"step": st["step"] - 1, "epoch": -1, "shape": list(images.shape),
                          "dtype": str(images.dtype).replace("torch.", ""), "state": st},
                    images.numpy(), labels.numpy())
        n += 1
        if n == args.batches:
            break
        pause(args, n)
    return ds.state_dict(), ds.info


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--out", required=True)
    p.add_argument("--via", choices=["conn", "dataset"], default="conn")
    p.add_argument("--state-in")
    p.add_argument("--state-out")
    p.add_argument("--pause-after", type=int)
    p.add_argument("--bad-rank", type=int)
    args = p.parse_args()

    if args.bad_rank is not None:
        try:
            cm.connect(args.address, rank=args.bad_rank).close()
        except cm.CertmixError as e:
            say({"bad_rank_error": str(e)})
        else:
            raise SystemExit("connecting as rank %d did not raise CertmixError" % args.bad_rank)
        if args.via == "dataset":
            try:
                next(iter(cm.CertmixDataset(args.address, rank=args.bad_rank)))
            except cm.CertmixError:
                pass
            else:
                raise SystemExit("CertmixDataset as rank %d did not raise CertmixError" % args.bad_rank)

    state = None
    if args.state_in:
        with open(args.state_in) as f:
            state = json.load(f)
    with open(args.out, "wb") as out:
        if args.via == "conn":
            last, info = via_conn(args, state, out)
        else:
            last, info = via_dataset(args, state, out)
    if args.state_out:
        with open(args.state_out, "w") as f:
            json.dump(last, f)
    say({"done": args.batches, "info": info})


if __name__ == "__main__":
    main()
