"""How fast is scoring? `llp_scores` and the whole `avvp score` command on LLP-sized val + test splits.

    python bench/bench_score.py [--repeat 5] [--seed 0]

Builds 1,849 random videos (649 val + 1,200 test, as LLP) of ground truth and predictions near it, writes
the official annotation CSVs to a temporary folder and the predictions as .npz, then times
`llp_scores` on all 1,849 videos, `avvp score` in-process (avvp.cli.main) and as a subprocess for each
split, and reports peak memory. Target: scoring under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from avvp.cli import main
from avvp.constants import CLASSES, NUM_CLASSES, NUM_SEGMENTS
from avvp.data.llp import read_split_annotations
from avvp.evaluation.metrics import llp_scores

SPLITS = {"val": 649, "test": 1200}


def random_events(rng, n: int, p_class: float) -> np.ndarray:
    """(n, 25, 10) uint8: each class present with probability p_class, as one to three random runs."""
    x = np.zeros((n, NUM_CLASSES, NUM_SEGMENTS), dtype=np.uint8)
    for i, c in zip(*np.nonzero(rng.random((n, NUM_CLASSES)) < p_class)):
        for _ in range(rng.integers(1, 4)):
            start = rng.integers(0, NUM_SEGMENTS)
            x[i, c, start:rng.integers(start + 1, NUM_SEGMENTS + 1)] = 1
    return x


def near(rng, gt: np.ndarray) -> np.ndarray:
    """A prediction: the ground truth with about 10% of its cells flipped and a few spurious classes."""
    flips = (rng.random(gt.shape) < 0.1).astype(np.uint8)
    return (gt ^ flips) & (gt.any(axis=2, keepdims=True) | (rng.random(gt.shape[:2] + (1,)) < 0.03))


def runs(row: np.ndarray):
    """Maximal runs of ones of a 0/1 row, as (onset, offset) with offset exclusive."""
    edges = np.diff(np.concatenate([[0], row, [0]]).astype(np.int8))
    return zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))


def write_annotations(folder: Path, names: dict, gt: dict) -> None:
    """The four official CSVs (tab-separated, header row) of the val and test splits."""
    dense = {"audio": ["filename\tonset\toffset\tevent_labels"], "visual": ["filename\tonset\toffset\tevent_labels"]}
    for split, split_names in names.items():
        weak = ["filename\tevent_labels"]
        for i, name in enumerate(split_names):
            present = gt[split]["audio"][i].any(axis=1) | gt[split]["visual"][i].any(axis=1)
            weak.append(f"{name}\t{','.join(CLASSES[c] for c in np.flatnonzero(present))}")
            for modality in ("audio", "visual"):
                for c in range(NUM_CLASSES):
                    for on, off in runs(gt[split][modality][i, c]):
                        dense[modality].append(f"{name}\t{on}\t{off}\t{CLASSES[c]}")
        (folder / f"AVVP_{split}_pd.csv").write_text("\n".join(weak) + "\n")
    for modality, rows in dense.items():
        (folder / f"AVVP_eval_{modality}.csv").write_text("\n".join(rows) + "\n")


def timed(fn, repeat: int):
    """(result, list of seconds) of `repeat` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, times


def peak_mib(fn) -> float:
    """Peak Python-heap memory (numpy buffers included) of one call, in MiB."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def fmt(times) -> str:
    return f"median {statistics.median(times) * 1e3:8.1f} ms  (min {min(times) * 1e3:.1f}, n={len(times)})"


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    names, gt, pred = {}, {}, {}
    for split, n in SPLITS.items():
        names[split] = [f"{split[0]}{i:010d}_0_10" for i in range(n)]
        gt[split] = {m: random_events(rng, n, p) for m, p in (("audio", 0.06), ("visual", 0.05))}
        # Every LLP video has at least one event: give the empty ones a random audio class.
        empty = np.flatnonzero(~(gt[split]["audio"].any(axis=(1, 2)) | gt[split]["visual"].any(axis=(1, 2))))
        gt[split]["audio"][empty, rng.integers(0, NUM_CLASSES, empty.size), :] = 1
        pred[split] = {m: near(rng, gt[split][m]) for m in ("audio", "visual")}
    every = {kind: {m: np.concatenate([d[s][m] for s in SPLITS]) for m in ("audio", "visual")}
             for kind, d in (("gt", gt), ("pred", pred))}
    n_all = sum(SPLITS.values())
    print(f"{n_all} videos; ground-truth cells on: audio {every['gt']['audio'].mean():.3f}, "
          f"visual {every['gt']['visual'].mean():.3f}; cpu cores {os.cpu_count()}")

    def score_all():
        return llp_scores(every["pred"]["audio"], every["pred"]["visual"], every["gt"]["audio"],
                          every["gt"]["visual"])

    score_all()   # warm-up (imports, first-touch allocations)
    _, t = timed(score_all, args.repeat)
    print(f"llp_scores, {n_all} videos:            {fmt(t)}  peak {peak_mib(score_all):.1f} MiB")
    val_only = lambda: llp_scores(pred["val"]["audio"], pred["val"]["visual"],   # noqa: E731
                                  gt["val"]["audio"], gt["val"]["visual"])
    _, t = timed(val_only, args.repeat)
    print(f"llp_scores, {SPLITS['val']} videos (val):        {fmt(t)}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ann = tmp / "ann"
        ann.mkdir()
        write_annotations(ann, names, gt)
        for split in SPLITS:
            # The ground truth read back from the CSVs is the one generated (the bench scores real inputs).
            a = read_split_annotations(ann, split)
            assert (a.gt_audio == gt[split]["audio"]).all() and (a.gt_visual == gt[split]["visual"]).all()
            order = rng.permutation(len(names[split]))   # prediction files may list videos in any order
            npz = tmp / f"{split}.npz"
            np.savez_compressed(npz, filenames=np.array(names[split])[order],
                                audio=pred[split]["audio"][order], visual=pred[split]["visual"][order])
            out = tmp / f"{split}.json"
            argv = ["score", "--annotations", str(ann), "--split", split, "--predictions", str(npz),
                    "--out", str(out)]

            def in_process():
                with open(os.devnull, "w") as devnull:
                    stdout, stderr, sys.stdout, sys.stderr = sys.stdout, sys.stderr, devnull, devnull
                    try:
                        assert main(argv) == 0
                    finally:
                        sys.stdout, sys.stderr = stdout, stderr

            _, t = timed(in_process, args.repeat)
            want = llp_scores(pred[split]["audio"], pred[split]["visual"], gt[split]["audio"], gt[split]["visual"])
            assert json.loads(out.read_text()) == want
            print(f"avvp score --split {split:4s} in-process: {fmt(t)}  peak {peak_mib(in_process):.1f} MiB")

            times, rss = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                proc = subprocess.Popen([sys.executable, "-m", "avvp", *argv],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                _, status, usage = os.wait4(proc.pid, 0)
                times.append(time.perf_counter() - t0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                assert proc.returncode == 0
                rss.append(usage.ru_maxrss / 1024)   # KiB on Linux
            print(f"avvp score --split {split:4s} subprocess: {fmt(times)}  max RSS {max(rss):.0f} MiB")
    print("scores (test split):", json.dumps(want["segment"]), json.dumps(want["event"]))


if __name__ == "__main__":
    main_bench()
