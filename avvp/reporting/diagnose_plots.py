"""The figures of `avvp diagnose` (avvp/reporting/diagnose.py computes what they show)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402

from avvp.constants import CLASSES  # noqa: E402
from avvp.io import save_figure as save  # noqa: E402

MODALITY_NAMES = {"audio": "Audio", "visual": "Visual", "audio_visual": "Audio-visual"}
MODALITY_COLOURS = {"audio": "#1f77b4", "visual": "#ff7f0e"}


def _no_data(out: Path, text: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    save(fig, out)


def diff_figure(per_class: pd.DataFrame, bases: dict, labels: dict, out: Path) -> None:
    """Heatmaps, one per level and modality: each row's per-class F minus its base row's (points of F)."""
    if not bases:
        return _no_data(out, "no row of this table extends another (tables.yaml `base`): nothing to compare")
    f = per_class.set_index(["variant", "level", "modality", "class"])["f"]
    names = list(bases)
    panels = [(lvl, m) for lvl in ("segment", "event") for m in MODALITY_NAMES]
    diffs = {p: np.array([[f[(n, *p, c)] - f[(bases[n], *p, c)] for c in CLASSES] for n in names]) for p in panels}
    finite = np.concatenate([d[np.isfinite(d)] for d in diffs.values()] + [np.array([1.0])])
    vmax = float(np.abs(finite).max())
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 0.32 * len(names) * len(panels) + 3.5), squeeze=False)
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#dddddd")   # grey: the class is active in no test video
    for ax, p in zip(axes[:, 0], panels):
        im = ax.imshow(np.ma.masked_invalid(diffs[p]), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_yticks(range(len(names)), [f"{labels[n]} - {labels[bases[n]]}" for n in names], fontsize=7)
        ax.set_xticks(range(len(CLASSES)), CLASSES if p == panels[-1] else [], rotation=70, ha="right", fontsize=7)
        ax.set_title(f"{MODALITY_NAMES[p[1]]}, {p[0]} level", fontsize=9)
        # one label for all: repeated on every thin panel, the labels overlap
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01, label="ΔF (points)" if p == panels[0] else None)
    fig.suptitle("Per-class F of each row minus its base row's (test split, mean over seeds); "
                 "blue: better, red: worse, grey: class never active", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the suptitle above the first panel
    save(fig, out)


def leak_figure(leaks: pd.DataFrame, labels: dict, out: Path) -> None:
    """Overall leak (label absent from a modality, predicted there) and miss (present, never predicted)."""
    overall = leaks[leaks["class"] == "all"]
    names = list(dict.fromkeys(overall["variant"]))
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.8 * len(names) + 4), 4.5), sharey=True)
    titles = {"leak": "Leak: a video label absent from the modality,\npredicted there at least 1 s",
              "miss": "Miss: present in the modality,\nnever predicted there"}
    for ax, kind in zip(axes, ("leak", "miss")):
        for k, m in enumerate(("audio", "visual")):
            sel = overall[(overall["kind"] == kind) & (overall["modality"] == m)].set_index("variant")
            ax.bar(x + (k - 0.5) * 0.4, [sel.loc[n, "share"] for n in names], 0.4, label=m,
                   color=MODALITY_COLOURS[m])
        ax.set_xticks(x, [labels.get(n, n) for n in names], rotation=60, ha="right", fontsize=8)
        ax.set_title(titles[kind], fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("share of (video, class) pairs, test split")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save(fig, out)


def cooccurrence_figure(truth: np.ndarray, predicted: dict, tv: dict, out: Path, ncols: int = 4) -> None:
    """The ground truth's and each row's normalised audio x visual class co-occurrence (square-root colour)."""
    panels = [("ground truth", truth, None)] + [(n, m, tv[n]) for n, m in predicted.items()]
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.6 * nrows + 0.8), squeeze=False)
    vmax = max(float(m.max()) for _, m, _ in panels) or 1.0
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.axis("off")
            continue
        name, matrix, dist = panels[k]
        ax.imshow(matrix, cmap="magma", norm=PowerNorm(0.5, vmin=0, vmax=vmax))
        ax.set_title(name if dist is None else f"{name}\nTV distance {dist:.3f}", fontsize=8)
        left, bottom = k % ncols == 0, k >= len(panels) - ncols
        ax.set_yticks(range(len(CLASSES)), CLASSES if left else [], fontsize=4.5)
        ax.set_xticks(range(len(CLASSES)), CLASSES if bottom else [], fontsize=4.5, rotation=90)
    fig.supylabel("audio class")
    fig.supxlabel("visual class")
    fig.suptitle("Share of (second, audio class, visual class) triples, test split, mean over seeds; "
                 "TV: total variation from the ground truth", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    save(fig, out)


def refinement_figure(refinement: pd.DataFrame, out: Path) -> None:
    """Precision and recall of a label stage's removals (MA's refinement), mean over seeds, per modality and what
    they are scored on."""
    overall = refinement[refinement["class"] == "all"]
    if overall.empty:
        return _no_data(out, "no label stage of these rows keeps its label quality (none, or not yet scored)")
    order = [s for s in ("synthetic_train", "val", "test") if s in set(overall["scored_on"])]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, m in zip(axes, ("audio", "visual")):
        sel = overall[overall["modality"] == m]
        mean = sel.groupby("scored_on")[["precision", "recall"]].mean()
        counts = sel.groupby("scored_on")[["removals", "should_remove"]].mean()
        x = np.arange(len(order))
        for k, what in enumerate(("precision", "recall")):
            ax.bar(x + (k - 0.5) * 0.4, [mean[what].get(s, np.nan) for s in order], 0.4, label=what)
        ax.set_xticks(x, [f"{s}\n{counts.loc[s, 'removals']:.0f} removed"
                          f"\n{counts.loc[s, 'should_remove']:.0f} to remove"
                          for s in order], fontsize=8)
        ax.set_title(f"{m} labels", fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    stages = ", ".join(dict.fromkeys(overall["stage"]))
    fig.suptitle(f"Label quality of `{stages}`: its removals against the truth (mean over seeds)", fontsize=10)
    fig.tight_layout()
    save(fig, out)
