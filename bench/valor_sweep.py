"""How VALOR's gain follows its teacher's quality: the teacher sweep of the table `valor`, as a figure and a table.

    .venv/bin/python bench/valor_sweep.py [--results results] [--out results/figures/valor_teacher_sweep.png]
                                          [--data data/packed/default-s0]

Reads results/valor.csv (`avvp table --table valor`): for each row on VALOR's pseudo-labels with a simulated teacher
(the label source's settings: each true second missed, each false one added, with probability q), the test
segment-level Type@AV (mean and std over seeds) against q, with HAN and VALOR's model on the weak labels alone
(`VALOR (no PLs)`) as lines. Prints the points as a markdown table. Synthetic data only (no teacher is simulated on
real LLP). With `--data` (the packed synthetic dataset the runs trained on) it adds each teacher's own quality: its
labels of the test split scored as predictions (segment Type@AV), the number the field reports for a teacher.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from avvp import variants
from avvp.io import save_figure
from avvp.methods.valor.pseudo_labels import quality, simulated, synthetic_truth

METRIC = "segment.type_av"


def points(table: pd.DataFrame) -> list[tuple[str, float, float, float]]:
    """(row, teacher q, mean, std) of every row on the simulated teacher, by q."""
    out = []
    for name in dict.fromkeys(table["variant"]):
        row = variants.get(name)
        teacher = row.recipe.get(row.labels) if row.labels == "valor" else None
        if teacher is None or teacher["miss"] != teacher["add"] or row.model.get("stacking") != "sequential" \
                or row.model.get("layers") != 1:
            continue
        line = table[(table["variant"] == name) & (table["metric"] == METRIC)].iloc[0]
        out.append((name, teacher["miss"], float(line["mean"]), float(line["std"])))
    return sorted(out, key=lambda p: p[1])


def teacher_quality(data: Path, name: str) -> float:
    """Test segment Type@AV of the row's simulated teacher (its labels scored against the truth)."""
    row = variants.get(name)
    test = synthetic_truth(data)["test"]
    return quality(simulated(test, row.recipe[row.labels]), test)["segment"]["type_av"]


def level(table: pd.DataFrame, name: str) -> float | None:
    line = table[(table["variant"] == name) & (table["metric"] == METRIC)]
    return float(line["mean"].iloc[0]) if len(line) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--data", type=Path, help="the packed synthetic dataset: adds each teacher's own test quality")
    args = ap.parse_args()
    table = pd.read_csv(args.results / "valor.csv")
    found = points(table)
    own = {name: f"{teacher_quality(args.data, name):.1f}" if args.data else "not computed" for name, *_ in found}
    print("| row | teacher miss = add | the teacher's own test segment Type@AV | the row's test segment Type@AV "
          "(mean ± std) |\n|---|---|---|---|")
    for name, q, mean, std in found:
        print(f"| {name} | {q:.1f} | {own[name]} | {mean:.1f} ± {std:.1f} |")
    for name in ("HAN", "VALOR (no PLs)"):
        if level(table, name) is not None:
            print(f"| {name} | (no pseudo-labels) | | {level(table, name):.1f} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar([p[1] for p in found], [p[2] for p in found], yerr=[p[3] for p in found], marker="o",
                label="VALOR on a simulated teacher")
    for name, style in (("HAN", ":"), ("VALOR (no PLs)", "--")):
        if level(table, name) is not None:
            ax.axhline(level(table, name), linestyle=style, color="grey", label=name)
    ax.set_xlabel("teacher's miss = add probability per second")
    ax.set_ylabel("test segment Type@AV (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = args.out or args.results / "figures" / "valor_teacher_sweep.png"
    save_figure(fig, out)
    print(f"\n{out}")


if __name__ == "__main__":
    main()
