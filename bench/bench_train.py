"""Benchmark: seconds per training epoch (validation included) and videos per second.

    .venv/bin/python bench/bench_train.py --variant HAN --preset full --epochs 3 [--device cuda] [--precision bf16]

Training speed does not depend on feature values, so by default the split sizes of a synthetic preset are filled
with random features in memory (no synth + pack needed); `--data PACKED` trains on a packed dataset instead.
Prints one line per epoch and a JSON summary. Not a test: run by hand, compare on the same machine only.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from avvp import variants
from avvp.data import dataset
from avvp.data.synth import SIZES
from avvp.training import label_sources
from avvp.training.train import Job, fit


def random_split(name: str, n: int, seed: int) -> dataset.Split:
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, 25, generator=g) < 0.08).float()
    labels[torch.arange(n), torch.randint(0, 25, (n,), generator=g)] = 1
    gt = (np.random.default_rng(seed).random((n, 25, 10)) < 0.05).astype(np.uint8)
    return dataset.Split(name, [f"v{i:05d}" for i in range(n)], torch.randn(n, 10, 128, generator=g),
                         torch.randn(n, 10, 2048, generator=g).abs(), torch.randn(n, 10, 512, generator=g).abs(),
                         labels, gt_audio=gt, gt_visual=gt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="HAN")
    ap.add_argument("--preset", default="full", choices=list(SIZES))
    ap.add_argument("--data", help="packed dataset instead of random features")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, help="override the recipe's batch size")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    row = variants.get(args.variant)
    if args.batch:
        row = replace(row, recipe={**row.recipe, "batch": args.batch})
    if args.data:
        train, val = dataset.load_split(args.data, "train"), dataset.load_split(args.data, "val")
    else:
        sizes = SIZES[args.preset]
        train, val = random_split("train", sizes["train"], 0), random_split("val", sizes["val"], 1)
    train.to(args.device), val.to(args.device)
    # Refined-label rows train on labels of the same shape: the weak labels stand in for them here.
    job = Job.of(row, seed=0, epochs=args.epochs, select="val", precision=args.precision, device=args.device)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # A denoising row (JoMoLD's stage 3) gets uniform noise ratios of 0.2: the per-batch work does not depend on them.
        ratios = torch.full((2, 25), 0.2, dtype=torch.float64) if row.labels == "jomold" else None
        # A per-second source (VALOR's pseudo-labels) trains on (N, 10, 25) labels: every second of the weak ones.
        y = label_sources.stand_in(row.labels, train.labels)
        _, state = fit(job, train, y, y, val, Path(tmp), quiet=True, values=ratios)
    wall = time.perf_counter() - t0
    secs = [r["seconds"] for r in state.log]
    for r in state.log:
        print(f"epoch {r['epoch']}: {r['seconds']:.2f} s (train {r['train_seconds']:.2f} s, "
              f"validation {r['seconds'] - r['train_seconds']:.2f} s)")
    steady = secs[1:] or secs
    summary = {"variant": row.name, "preset": args.preset if not args.data else args.data,
               "train_videos": len(train), "val_videos": len(val), "batch": job.recipe["batch"],
               "device": args.device, "precision": args.precision, "threads": torch.get_num_threads(),
               "cpu": platform.processor() or platform.machine(),
               "cuda": torch.cuda.get_device_name() if args.device == "cuda" else None,
               "seconds_per_epoch": round(float(np.median(steady)), 3),
               "videos_per_second": round(len(train) / float(np.median(steady)), 1),
               "first_epoch_seconds": round(secs[0], 3), "wall_seconds": round(wall, 2),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               "val_segment_type_av_last": state.log[-1].get("val_segment_type_av")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    sys.exit(main())
