"""Measures how fast CertmixDataset yields batches as torch tensors.

    python3 clients/python/bench.py 127.0.0.1:7070 --batches 1000

prints one line of JSON: images_per_s, batches, batch_size (and seconds,
MB/s, and client_cpu_share: the client's CPU seconds per second, near 1 when
the Python side is the bottleneck). --raw measures Connection.read_batch alone (numpy views, no tensor
copy), to tell the socket and the server from the copy into tensors.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import certmix_client as cm  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("address", help="unix:/path/to.sock or host:port")
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--batches", type=int, default=500, help="batches timed")
    p.add_argument("--warmup", type=int, default=20, help="batches read before timing")
    p.add_argument("--pin", action="store_true", help="pin memory (when CUDA is available)")
    p.add_argument("--raw", action="store_true", help="time read_batch alone, no torch tensors")
    args = p.parse_args()

    if args.raw:
        conn = cm.connect(args.address, rank=args.rank)
        batch = conn.info["batch"]
        nbytes = 0
        for _ in range(args.warmup):
            conn.read_batch()
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.batches):
            b = conn.read_batch()
            nbytes += b.images.nbytes
        secs, cpu = time.perf_counter() - start, time.process_time() - cpu
        conn.close()
    else:
        import torch
        from torch.utils.data import DataLoader

        torch.set_num_threads(1)
        ds = cm.CertmixDataset(args.address, rank=args.rank, pin_memory=args.pin)
        loader = DataLoader(ds, batch_size=None, num_workers=0)
        it = iter(loader)
        for _ in range(args.warmup):
            next(it)
        batch = ds.info["batch"]
        nbytes = 0
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.batches):
            images, labels = next(it)
            nbytes += images.numel() * images.element_size()
        secs, cpu = time.perf_counter() - start, time.process_time() - cpu
        del it
    print(json.dumps({"images_per_s": round(args.batches * batch / secs), "batches": args.batches, "batch_size": batch,
                      "seconds": round(secs, 3), "client_cpu_share": round(cpu / secs, 2), "image_mb_per_s": round(nbytes / secs / 1e6, 1),
                      "mode": "read_batch" if args.raw else "torch"}))


if __name__ == "__main__":
    main()
