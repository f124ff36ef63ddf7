"""Report: every trained row of a results folder, its ten test numbers and the seconds it took, beside the two
reference predictions (empty; video labels copied to every second) and the label refinement's quality.

    .venv/bin/python bench/variants_report.py --results results --data data/packed/default-s0 --seed 0

Prints markdown. Numbers come from the runs' own metrics.json/done.json; the references are scored here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate

from avvp import outputs, paths, variants
from avvp.data import dataset
from avvp.evaluation import baselines
from avvp.evaluation.metrics import KEYS, LEVELS
from avvp.methods import ma

COLUMNS = [(level, key) for level in LEVELS for key in KEYS]
HEADERS = [f"{'Seg' if level == 'segment' else 'Ev'} {key}" for level, key in COLUMNS]


def row(name: str, scores: dict, seconds: str, copy: dict | None = None) -> list:
    # The margin over the copy reference on segment Type@AV: a row that learns nothing beyond the labels is <= 0.
    margin = "-" if copy is None else f"{scores['segment']['type_av'] - copy['segment']['type_av']:+.1f}"
    return [name] + [f"{scores[level][key]:.1f}" for level, key in COLUMNS] + [margin, seconds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--data", required=True, help="packed dataset the runs were trained on")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    results = Path(args.results)
    test = dataset.load_split(args.data, "test")
    copy = baselines.copy_labels(test.labels.numpy(), test.gt_audio, test.gt_visual)
    rows = [row("(empty prediction)", baselines.empty(test.gt_audio, test.gt_visual), "-", copy),
            row("(video labels copied to every second)", copy, "-")]
    for name in variants.names():
        run = paths.run_folder(paths.slug(name), args.seed, results)
        done = outputs.done(run)
        if done is not None and paths.metrics_json(run, "test").is_file():
            rows.append(row(name, outputs.metrics(run), f"{done['seconds']:.0f}", copy))
    print(tabulate(rows, headers=["row"] + HEADERS + ["Seg type_av - copy", "train s"], tablefmt="pipe"))
    summary = ma.summary_file(ma.refine_folder(args.seed, results))
    if summary.is_file():
        s = outputs.read_json(summary, "make it with: avvp refine")
        print(f"\nRefinement (seed {args.seed}): removed {s['removed']}")
        for m, t in (s.get("against_truth") or {}).items():
            print(f"- {m}: precision {t['precision']}, recall {t['recall']} "
                  f"({t['correct_removals']} of {t['removals']} removals right; {t['should_remove']} to remove)")
        for m, f in (s.get("fitted_exactly") or {}).items():
            print(f"- {m}: step 1 fits {f['classes']} classes exactly ({f['labels']} of {f['of_labels']} labels "
                  "cannot be refined)")


if __name__ == "__main__":
    main()
