"""Hash every result of a workflow run that a refactor must keep, keyed by what it is, not where it lies
(bench/fingerprint.sh): `python bench/fingerprint_hash.py RESULTS` prints one line per file.

JSON is hashed as its content (keys sorted: their order is no result), arrays as their bytes by name; a
thresholds file without its timing, a noise-ratios file without the estimator's path, a table's CSV by its
values, intervals and tests (its header holds the commit and the machine).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys

import numpy as np
import pandas as pd


def npz(path: str) -> str:
    z = np.load(path, allow_pickle=False)
    return hashlib.sha256(b"".join(k.encode() + z[k].tobytes() for k in sorted(z.files))).hexdigest()[:16]


def js(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def read(path: str):
    with open(path) as f:
        return json.load(f)


def lines(res: str) -> list[str]:
    out = []
    for f in sorted(glob.glob(f"{res}/runs/*/seed*/*/metrics.json")):
        split_dir = os.path.dirname(f)
        run = os.path.dirname(split_dir)
        key = f"{os.path.basename(os.path.dirname(run))} {os.path.basename(run)} {os.path.basename(split_dir)}"
        out.append(f"metrics {key} {js(read(f))}")
        out.append(f"per_video {key} {npz(os.path.join(split_dir, 'per_video.npz'))}")
        out.append(f"by_gating {key} {js(read(os.path.join(split_dir, 'metrics_by_gating.json')))}")
    for f in sorted(glob.glob(f"{res}/runs/*/seed*/thresholds.json")):
        t, run = read(f), os.path.dirname(f)
        kept = {k: t.get(k) for k in ("thresholds", "scores", "baseline", "mode", "snapshot")}
        out.append(f"thresholds {os.path.basename(os.path.dirname(run))} {os.path.basename(run)} {js(kept)}")
    for f in sorted(glob.glob(f"{res}/refine/seed*/refined_labels.npz")):
        out.append(f"refined {os.path.basename(os.path.dirname(f))} {npz(f)}")
    for f in sorted(glob.glob(f"{res}/jomold/seed*/noise_ratios.json")):
        r = read(f)
        kept = {k: r[k] for k in ("audio", "visual", "positives")}
        out.append(f"ratios {os.path.basename(os.path.dirname(f))} {js(kept)}")
    for f in sorted(glob.glob(f"{res}/table*.csv")):
        t = pd.read_csv(f)[["variant", "metric", "values", "p_boot_vs_base", "ci_low", "ci_high"]]
        out.append(f"table {os.path.basename(f)} {js(t.astype(str).values.tolist())}")
    return out


if __name__ == "__main__":
    print("\n".join(lines(sys.argv[1])))
