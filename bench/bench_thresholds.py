"""How long does CMPAE's threshold search take? The search alone on LLP's 649 validation videos, and the whole
`avvp thresholds` command (a model's forward pass over validation included) on a run, when one is given.

    python bench/bench_thresholds.py [--videos 649] [--repeat 5] [--seed 0] [--run RESULTS/runs/cmpae/seed0]

The search (avvp/methods/cmpae/thresholds.py) scores 25 classes x 10 thresholds = 250 candidates from one count of
events. Its inputs here are random probabilities and ground truth of LLP's size (events as one to three runs per
present class), so the time is the search's, independent of any model. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from avvp.constants import NUM_CLASSES, NUM_SEGMENTS
from avvp.methods.cmpae.thresholds import search


def random_split(n: int, seed: int):
    """Probabilities (frame_prob (n, 10, 2, 25), v_prob, a_prob, global_prob) and visual ground truth (n, 25, 10)."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((n, NUM_CLASSES, NUM_SEGMENTS), dtype=np.uint8)
    for i, c in zip(*np.nonzero(rng.random((n, NUM_CLASSES)) < 0.06)):
        for _ in range(rng.integers(1, 4)):
            start = rng.integers(0, NUM_SEGMENTS)
            gt[i, c, start:rng.integers(start + 1, NUM_SEGMENTS + 1)] = 1
    near = gt.transpose(0, 2, 1).astype(np.float32)                      # (n, 10, 25)
    frame_v = np.clip(0.6 * near + 0.4 * rng.random(near.shape, dtype=np.float32), 0, 1)
    frame_prob = np.stack([rng.random(near.shape, dtype=np.float32), frame_v], axis=2)
    v_prob = np.clip(0.5 * gt.any(-1) + 0.5 * rng.random((n, NUM_CLASSES)), 0, 1).astype(np.float32)
    probs = {"frame_prob": frame_prob, "v_prob": v_prob, "a_prob": rng.random((n, NUM_CLASSES), dtype=np.float32),
             "global_prob": rng.random((n, NUM_CLASSES), dtype=np.float32)}
    return probs, gt


def time_search(n: int, repeat: int, seed: int) -> dict:
    probs, gt = random_split(n, seed)
    search(probs, gt)                                                  # warm-up (imports, caches)
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        search(probs, gt)
        seconds.append(time.perf_counter() - t0)
    return {"videos": n, "candidates": 250, "repeat": repeat, "median_s": round(statistics.median(seconds), 4),
            "min_s": round(min(seconds), 4)}


def time_command(run: str, repeat: int) -> dict:
    """`avvp thresholds --run RUN` in-process (model load, one validation forward, search, file), median of runs."""
    from avvp.cli import main

    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        assert main(["thresholds", "--run", run, "--threads", "1"]) == 0
        seconds.append(time.perf_counter() - t0)
    return {"run": run, "repeat": repeat, "median_s": round(statistics.median(seconds), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=649, help="validation videos (LLP: 649)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run", help="also time `avvp thresholds` on this trained run")
    args = ap.parse_args()
    out = {"search": time_search(args.videos, args.repeat, args.seed)}
    if args.run:
        out["command"] = time_command(args.run, args.repeat)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
