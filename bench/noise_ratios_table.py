"""JoMoLD's estimated noise ratios beside the synthetic truth, per class: how well does stage 2 estimate?

    python bench/noise_ratios_table.py [--results results] [--seeds 0 1 2]

Reads each seed's `results/jomold/seed<S>/noise_ratios.json` (stage 2, `avvp noise-ratios`; on synthetic data
it carries `truth_absent`: the share of each class's training labels absent from each modality) and prints a
Markdown table: per class and modality, the estimated ratio (mean over the seeds found) beside the true share,
then per modality the mean over classes and the Spearman rank correlation over the 25 classes (scipy.stats), so a
reader sees both the level (does it remove as much as is wrong?) and the order (does it pick the right classes?).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from avvp import paths
from avvp.io import read_json
from avvp.methods.jomold import ratios_file

MODALITIES = ("audio", "visual")


def load(results: Path, seeds: list[int]) -> tuple[list[str], dict, dict, list[int]]:
    """(classes, estimated {modality: (S, C)}, truth {modality: (C,)}, seeds found): the truth is the data's, the
    same for every seed."""
    records, found = [], []
    for seed in seeds:
        f = ratios_file(seed, results)
        if f.exists():
            records.append(read_json(f, "noise ratios file"))   # a bad file: one line naming it
            found.append(seed)
    if not records:
        raise SystemExit(f"noise_ratios_table: no results/jomold/seed<S>/noise_ratios.json under {results} "
                         f"for seeds {seeds} (make them: snakemake --cores 4 results/jomold/seed0/noise_ratios.json)")
    if any("truth_absent" not in r for r in records):
        raise SystemExit("noise_ratios_table: the ratios files carry no synthetic truth (real data): nothing to compare")
    estimated = {m: np.array([r[m]["ratio"] for r in records]) for m in MODALITIES}
    truth = {m: np.array(records[0]["truth_absent"][m]) for m in MODALITIES}
    return records[0]["classes"], estimated, truth, found


def table(classes, estimated, truth, seeds) -> list[str]:
    lines = [f"JoMoLD stage 2 vs the synthetic truth (seeds {', '.join(map(str, seeds))}; estimate: mean over seeds)",
             "", "| class | audio: estimated | audio: true | visual: estimated | visual: true |",
             "|---|---|---|---|---|"]
    for c, name in enumerate(classes):
        cells = [f"{estimated[m][:, c].mean():.3f} | {truth[m][c]:.3f}" for m in MODALITIES]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    cells = [f"{estimated[m].mean():.3f} | {truth[m].mean():.3f}" for m in MODALITIES]
    lines.append(f"| mean over classes | {' | '.join(cells)} |")
    rho = [stats.spearmanr(estimated[m].mean(axis=0), truth[m]).statistic for m in MODALITIES]
    lines += ["", "Spearman rank correlation over the 25 classes (estimate vs truth): "
              + ", ".join(f"{m} {r:.2f}" for m, r in zip(MODALITIES, rho))]
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path(paths.RESULTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    print("\n".join(table(*load(args.results, args.seeds))))


if __name__ == "__main__":
    main(sys.argv[1:])
