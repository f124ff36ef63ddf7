"""Time `avvp diagnose`: 22 rows x 3 seeds over 1,200 test videos (issue 10: seconds, not minutes).

Writes fake evaluated runs (test/predictions.npz as `avvp evaluate` does: binary audio/visual and the shared
annotations, (N, 25, 10)), a packed test split's weak labels, refine summaries and a 22-row table spec into a
temporary folder, then times `diagnose.diagnose` (reading every file, every measure, every CSV and PNG).

    .venv/bin/python bench/bench_diagnose.py [--rows 22] [--seeds 3] [--videos 1200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from avvp import paths, variants
from avvp.io import write_json, write_npz
from avvp.methods import ma
from avvp.reporting import diagnose


def fake_tree(root: Path, names: list[str], seeds: int, videos: int) -> Path:
    """The results folder of fake runs; returns the packed folder (test weak labels)."""
    rng = np.random.default_rng(0)
    files = np.array([f"vid{i:05d}_0_10" for i in range(videos)])
    weak = rng.random((videos, 25)) < 0.08
    gt_a = weak[:, :, None] & (rng.random((videos, 25, 10)) < 0.5)
    gt_v = weak[:, :, None] & (rng.random((videos, 25, 10)) < 0.4)
    packed = root / "packed"
    (packed / "test").mkdir(parents=True)
    np.save(packed / "test" / "filenames.npy", files)
    np.save(packed / "test" / "labels.npy", weak.astype(np.uint8))
    results = root / "results"
    for name in names:
        for seed in range(seeds):
            noise = lambda: rng.random((videos, 25, 10)) < 0.02  # noqa: E731 - per-run false positives
            write_npz(paths.predictions_npz(paths.run_folder(paths.slug(name), seed, results), "test"), filenames=files,
                      audio=((gt_a & (rng.random(gt_a.shape) < 0.8)) | noise()).astype(np.uint8),
                      visual=((gt_v & (rng.random(gt_v.shape) < 0.8)) | noise()).astype(np.uint8),
                      gt_audio=gt_a.astype(np.uint8), gt_visual=gt_v.astype(np.uint8))
    scores = {"removals": 10, "correct_removals": 5, "should_remove": 20, "precision": 0.5, "recall": 0.25}
    for seed in range(seeds):
        write_json(ma.summary_file(ma.refine_folder(seed, results)), {"against_truth": {"audio": scores, "visual": scores},
                   "against_annotations": {s: {"audio": scores, "visual": scores} for s in ("val", "test")}})
    return packed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=22)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--videos", type=int, default=1200)
    args = ap.parse_args()
    names = variants.names()[:args.rows]
    rows = [{"variant": n, "base": names[0] if i else None} for i, n in enumerate(names)]
    with tempfile.TemporaryDirectory() as tmp:
        packed = fake_tree(Path(tmp), names, args.seeds, args.videos)
        t0 = time.perf_counter()
        diagnose.diagnose(Path(tmp) / "results", rows, list(range(args.seeds)), Path(tmp) / "out", True, packed)
        seconds = time.perf_counter() - t0
    print(f"avvp diagnose: {len(rows)} rows x {args.seeds} seeds x {args.videos} videos: {seconds:.1f} s")


if __name__ == "__main__":
    main()
