"""Benchmark: MM-Pyramid's seconds per training epoch beside HAN's, CPU fp32 and bf16 (issue 20).

    .venv/bin/python bench/bench_mmpyr.py --threads 1 [--steps 30] [--variants "HAN" "MM-Pyramid"]

An epoch of the synthetic default (2,000 training videos, 200 validation videos) is timed in parts: the median of
`--steps` training steps of the row's recipe batch (after `--warmup` untimed ones) times the epoch's
ceil(2000 / batch) steps, plus eval-mode forward passes over the 200 validation videos. The rows' steps are
interleaved, so that on a shared machine every row meets the same load (the JSON records the load average). Random features of the real shapes: speed does
not depend on their values. Each row under each precision (bf16: autocast, AVX512-BF16/AMX here). Also prints each
row's parameters and FLOPs (`avvp profile`'s four figures, batch 64) and, for MM-Pyramid, the released model's
built count. Prints one line per measurement and a JSON summary. Not a test: run by hand, compare on the same
machine only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch

from avvp import variants
from avvp.data.synth import SIZES
from avvp.models import build
from avvp.models.mmpyr import released_unused_params
from avvp.models.precision import autocast
from avvp.reporting.profile import count, random_inputs
from avvp.training.losses import Batch
from avvp.training.train import Job, optimiser, train_step

PRESET = "default"
VAL_CHUNK = 100


def random_batch(n: int, gen: torch.Generator) -> Batch:
    y = (torch.rand(n, 25, generator=gen) < 0.08).float()
    y[torch.arange(n), torch.randint(0, 25, (n,), generator=gen)] = 1
    return Batch(torch.randn(n, 10, 128, generator=gen), torch.randn(n, 10, 2048, generator=gen).abs(),
                 torch.randn(n, 10, 512, generator=gen).abs(), y, y, y)


class Timed:
    """One row under one precision, built and ready to step: its model, optimiser and batches."""

    def __init__(self, name: str, precision: str):
        self.name, self.precision = name, precision
        self.job = Job.of(variants.get(name), seed=0, epochs=1, select="val", precision=precision, device="cpu")
        torch.manual_seed(0)
        self.model = build(self.job.spec)
        self.optim, _ = optimiser(self.job, self.model)
        self.gen = torch.Generator().manual_seed(0)
        self.batches = [random_batch(self.job.recipe["batch"], self.gen) for _ in range(4)]
        self.val = random_batch(VAL_CHUNK, torch.Generator().manual_seed(1))
        self.steps, self.forwards = [], []

    def step(self, i: int) -> None:
        """One training step, timed. Epoch 3 (0-based 2): every extra loss is in force (CM-S starts there)."""
        self.model.train()
        t0 = time.perf_counter()
        train_step(self.model, self.optim, self.job, self.batches[i % len(self.batches)], 2, self.gen)
        self.steps.append(time.perf_counter() - t0)

    def forward(self) -> None:
        """One eval-mode forward pass over VAL_CHUNK videos (evaluation's batch), timed."""
        self.model.eval()
        with torch.no_grad(), autocast(self.precision, "cpu"):
            t0 = time.perf_counter()
            self.model(self.val.audio, self.val.visual, self.val.motion)
            self.forwards.append(time.perf_counter() - t0)

    def result(self, warmup: int) -> dict:
        sizes = SIZES[PRESET]
        per_step = statistics.median(self.steps[warmup:])
        epoch_steps = math.ceil(sizes["train"] / self.job.recipe["batch"])
        validation = statistics.median(self.forwards[1:]) * math.ceil(sizes["val"] / VAL_CHUNK)
        return {"variant": self.name, "precision": self.precision, "batch": self.job.recipe["batch"],
                "steps_per_epoch": epoch_steps, "seconds_per_step": round(per_step, 4),
                "train_seconds_per_epoch": round(per_step * epoch_steps, 2), "validation_seconds": round(validation, 2),
                "seconds_per_epoch": round(per_step * epoch_steps + validation, 2)}


def measure(names: list[str], precision: str, steps: int, warmup: int) -> list[dict]:
    """Every row under one precision, their steps INTERLEAVED (row 1, row 2, row 1, ...): on a shared machine the
    load changes over minutes, and interleaving gives every row the same load, so their ratio stays fair."""
    rows = [Timed(name, precision) for name in names]
    for i in range(warmup + steps):
        for row in rows:
            row.step(i)
    for _ in range(4):
        for row in rows:
            row.forward()
    return [row.result(warmup) for row in rows]


def figures(name: str) -> dict:
    torch.manual_seed(0)
    model = build(variants.get(name).model)
    out = count(model, random_inputs(64))
    if variants.get(name).model["backbone"] == "mmpyr":
        out["released_built_params"] = out["true_params"] + released_unused_params()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["HAN", "MM-Pyramid"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per row and precision")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-profile", action="store_true", help="skip the parameter and FLOP counts")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for precision in args.precisions:
        for r in measure(args.variants, precision, args.steps, args.warmup):
            print(f"{r['variant']} {precision}: {r['seconds_per_epoch']:.1f} s/epoch ({r['steps_per_epoch']} steps x "
                  f"{r['seconds_per_step'] * 1000:.0f} ms + validation {r['validation_seconds']:.1f} s)", flush=True)
            results.append(r)
    counts = {} if args.no_profile else {name: figures(name) for name in args.variants}
    base = {(r["variant"], r["precision"]): r["seconds_per_epoch"] for r in results}
    for r in results:
        han = base.get(("HAN", r["precision"]))
        r["x_han"] = round(r["seconds_per_epoch"] / han, 2) if han else None
    print(json.dumps({"preset": PRESET, "train_videos": SIZES[PRESET]["train"], "val_videos": SIZES[PRESET]["val"],
                      "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                      "torch": torch.__version__, "load_average_1_5_15": os.getloadavg(), "steps_timed": args.steps, "results": results,
                      "profile_batch_64": counts}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
