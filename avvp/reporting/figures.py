"""`avvp figure`: the paper's figures from evaluated runs.

- timeline (Figure 2): for a few test videos, the ground-truth and predicted audio and visual events
  over the ten seconds, one bar lane per class and source, for two methods side by side.
- tsne (Figures 3-4): t-SNE of the time-pooled audio and visual features of the test videos, coloured by
  the video's label combination, for two methods side by side.
- spread (beyond the paper): every Table 2 row, per metric, the mean over seeds with each seed as a dot,
  so a reader sees how much of a difference between rows is seed noise.

The kinds are a registry (`FIGURES`), each with the rows it shows by default, the seeds and the run outputs it
reads: `avvp figure` and the workflow's figure rule both take them from here. matplotlib is imported when a
figure is drawn, so reading the registry is cheap.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from avvp import outputs, paths, sheets
from avvp import variants as variants_mod
from avvp.constants import CLASSES, NUM_SEGMENTS
from avvp.errors import AvvpError
from avvp.io import save_figure
from avvp.registry import FIGURES
from avvp.reporting import column_label

SOURCE_COLOURS = {"ground truth": "#333333"}
METHOD_COLOURS = ["#1f77b4", "#d62728"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on cluster nodes
    import matplotlib.pyplot as plt

    return plt


def aligned(results: Path, methods: list[str], seed: int, keys=outputs.BINARY, variants_files=None) -> list[dict]:
    """Both methods' predictions (each row's runs: another row's for a `runs_of` row), reordered to the first
    method's video order."""
    rows = variants_mod.resolve(methods, variants_files)
    runs = [variants_mod.run_dir(rows[m], seed, results) for m in methods]
    preds = [outputs.predictions(run, keys) for run in runs]
    ref = [str(f) for f in preds[0]["filenames"]]
    for run, p in zip(runs[1:], preds[1:]):
        names = [str(f) for f in p["filenames"]]
        if set(names) != set(ref):
            where = paths.predictions_npz(run, "test")
            raise AvvpError(f"{where}: its videos differ from "
                            f"those of '{methods[0]}' (evaluated on different data?)")
        index = {n: i for i, n in enumerate(names)}
        order = np.array([index[n] for n in ref])
        for k in keys:
            p[k] = p[k][order]
    return preds


def _two_methods(methods: list[str], kind: str, variants_files) -> list[str]:
    if len(methods) != 2:
        raise AvvpError(f"--methods: {kind} compares exactly two methods (got {len(methods)})")
    known = variants_mod.names(variants_files)
    for m in methods:
        if m not in known:
            raise AvvpError(f"--methods: unknown variant '{m}' (not in the variants sheets)")
    return methods


# ------------------------------------------------------------------------------------------- timeline

def pick_videos(preds: list[dict], count: int = 3, seed: int = 0) -> list[int]:
    """The videos where the two methods disagree most (ties broken by file order), plus one drawn with a
    fixed seed from the rest, so the figure also shows a typical video. Deterministic."""
    a, b = preds
    disagree = (np.abs(a["audio"].astype(int) - b["audio"].astype(int)).sum(axis=(1, 2))
                + np.abs(a["visual"].astype(int) - b["visual"].astype(int)).sum(axis=(1, 2)))
    order = np.argsort(-disagree, kind="stable")
    n_top = min(max(count - 1, 1), len(order))
    chosen = list(order[:n_top])
    rest = sorted(set(range(len(order))) - set(chosen))
    if rest and len(chosen) < count:
        chosen.append(int(np.random.default_rng(seed).choice(rest)))
    return [int(i) for i in chosen]


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of ones in a 10-segment row, as (start, length) for broken_barh."""
    padded = np.concatenate([[0], row.astype(int), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return [(int(s), int(e - s)) for s, e in zip(edges[::2], edges[1::2])]


def shown_classes(sources: list[tuple[str, np.ndarray, str]], limit: int = 6) -> tuple[list[int], int]:
    """The classes one panel shows: ground-truth classes first, then those the methods predict most;
    at most `limit`, so a noisy prediction cannot make the panel unreadable. Returns (classes, hidden)."""
    gt = sources[0][1].any(axis=1)
    predicted = sum(m.astype(np.int64).sum(axis=1) for _, m, _ in sources[1:])
    active = np.flatnonzero(gt | (predicted > 0))
    ranked = sorted(active, key=lambda c: (not gt[c], -predicted[c], c))
    return [int(c) for c in ranked[:limit]], max(0, len(ranked) - limit)


def _timeline_panel(ax, sources: list[tuple[str, np.ndarray, str]], title: str, limit: int = 6) -> None:
    """One modality of one video: per shown class, a block of lanes (ground truth, then each method)."""
    classes, hidden = shown_classes(sources, limit)
    block = len(sources) + 1  # lanes per class plus a gap
    for k, c in enumerate(classes):
        for s, (_, m, colour) in enumerate(sources):
            ax.broken_barh(_runs(m[c]), (k * block + s + 0.1, 0.8), facecolors=colour)
    ax.set_yticks([k * block + len(sources) / 2 for k in range(len(classes))],
                  [CLASSES[c] for c in classes], fontsize=8)
    if not classes:
        ax.text(NUM_SEGMENTS / 2, 0.5, "no event", ha="center", va="center", color="grey")
    ax.set_xlim(0, NUM_SEGMENTS)
    ax.set_ylim(max(len(classes) * block - 1, 1), 0)
    ax.set_xticks(range(NUM_SEGMENTS + 1))
    ax.set_xlabel("time (s)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    more = f" (+{hidden} more classes predicted)" if hidden else ""
    ax.set_title(title + more, fontsize=9)


def timeline(results: Path, methods: list[str], seed: int, out: Path, count: int = 3, limit: int = 6,
             variants_files=None) -> list[str]:
    """Figure 2: `count` test videos (see pick_videos), audio and visual panels, returns their filenames."""
    plt = _pyplot()
    preds = aligned(results, methods, seed, variants_files=variants_files)
    videos = pick_videos(preds, count=count, seed=seed)
    panels, heights = [], []
    for i in videos:
        row = []
        for modality in ("audio", "visual"):
            sources = [("ground truth", preds[0][f"gt_{modality}"][i], SOURCE_COLOURS["ground truth"])]
            sources += [(m, p[modality][i], colour) for m, p, colour in zip(methods, preds, METHOD_COLOURS)]
            row.append((modality, sources))
        panels.append((i, row))
        heights.append(max(1, max(len(shown_classes(src, limit)[0]) for _, src in row)))
    fig, axes = plt.subplots(len(videos), 2, figsize=(13, 1.2 + sum(0.9 + 0.55 * h for h in heights)),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    for r, (i, row) in enumerate(panels):
        name = str(preds[0]["filenames"][i])
        for col, (modality, sources) in enumerate(row):
            _timeline_panel(axes[r, col], sources, f"{name}: {modality} events", limit)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in [SOURCE_COLOURS["ground truth"], *METHOD_COLOURS]]
    fig.legend(handles, ["ground truth", *methods], loc="upper right", ncol=3, fontsize=9,
               title="lanes per class, top to bottom")
    fig.suptitle(f"Audio and visual events of test videos: ground truth, {methods[0]} and {methods[1]} "
                 f"(seed {seed})", fontsize=11, x=0.35)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    save_figure(fig, out)
    return [str(preds[0]["filenames"][i]) for i in videos]


# ----------------------------------------------------------------------------------------------- tsne

def label_combinations(gt_audio: np.ndarray, gt_visual: np.ndarray) -> list[str]:
    """Each video's set of classes present in either modality, as a readable key."""
    present = (gt_audio.any(axis=2) | gt_visual.any(axis=2))
    return [" + ".join(CLASSES[c] for c in np.flatnonzero(row)) or "(none)" for row in present]


def embed(features: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 5:
        raise AvvpError(f"t-SNE needs at least 5 test videos (got {n})")
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        features.astype(np.float64))


def tsne(results: Path, methods: list[str], seed: int, out: Path, top: int = 8, variants_files=None) -> None:
    """Figures 3-4: where each method's pooled features put the videos, one colour per frequent label
    combination (the `top` most common; the rest grey)."""
    plt = _pyplot()
    keys = ("filenames", "pooled_audio", "pooled_visual", "gt_audio", "gt_visual")
    preds = aligned(results, methods, seed, keys, variants_files)
    combos = label_combinations(preds[0]["gt_audio"], preds[0]["gt_visual"])
    common = [c for c, _ in Counter(combos).most_common(top)]
    # tab10 without its grey (index 7), which would read as "other".
    palette = [plt.get_cmap("tab10")(i) for i in range(10) if i != 7]
    fig, axes = plt.subplots(2, 2, figsize=(12, 10), squeeze=False)
    for col, (method, p) in enumerate(zip(methods, preds)):
        for row, modality in enumerate(("audio", "visual")):
            xy = embed(p[f"pooled_{modality}"], seed)
            ax = axes[row, col]
            rest = np.array([c not in common for c in combos])
            if rest.any():
                ax.scatter(xy[rest, 0], xy[rest, 1], s=8, c="lightgrey", label="other")
            for k, combo in enumerate(common):
                sel = np.array([c == combo for c in combos])
                ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=palette[k % len(palette)], label=combo)
            ax.set_title(f"{method}: pooled {modality} features", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, title="label combination")
    fig.suptitle(f"t-SNE of time-pooled features of the test videos (seed {seed})", fontsize=12)
    fig.tight_layout(rect=(0, 0.1, 1, 0.97))
    save_figure(fig, out)


# --------------------------------------------------------------------------------------------- spread

def _seeds_found(results: Path, row: variants_mod.Variant) -> list[int]:
    root = variants_mod.run_dir(row, 0, results).parent
    seeds = [paths.seed_of(p.parent.parent) for p in root.glob("seed*/test/metrics.json")]
    return sorted(s for s in seeds if s is not None)


def spread(results: Path, tables_files, seeds: list[int] | None, out: Path, table: str = "table2",
           methods: list[str] | None = None, variants_files=None) -> None:
    """Every row of a table (Table 2 by default; `methods` restricts the rows): per metric, each seed's
    test number as a dot, their mean as a bar and the paper's number as a red x. Without `seeds`,
    every evaluated seed of a row is shown."""
    plt = _pyplot()
    spec = sheets.table(table, tables_files, variants_files)
    rows = [r for r in spec["rows"] if not methods or r["variant"] in methods]
    if not rows:
        raise AvvpError(f"--methods: none of {methods} is a row of {table}")
    resolved = variants_mod.resolve([r["variant"] for r in rows], variants_files)
    columns = spec["columns"]
    data = []
    for r in rows:
        row = resolved[r["variant"]]
        row_seeds = seeds or _seeds_found(results, row)
        if not row_seeds:
            raise AvvpError(f"{variants_mod.run_dir(row, 0, results).parent}: no evaluated run "
                            "(make them with: avvp evaluate --run RUN --split test)")
        data.append(np.stack([outputs.numbers(variants_mod.run_dir(row, s, results), columns) for s in row_seeds]))
    ncols = 5
    nrows = int(np.ceil(len(columns) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.8 * nrows), squeeze=False, sharex=True)
    x = np.arange(len(rows))
    names = [r.get("label", r["variant"]) for r in rows]
    for j, key in enumerate(columns):
        ax = axes.flat[j]
        for i, values in enumerate(data):
            ax.scatter(np.full(len(values), i), values[:, j], s=12, color="#1f77b4", alpha=0.7, zorder=2)
            ax.hlines(values[:, j].mean(), i - 0.3, i + 0.3, color="black", lw=2, zorder=3)
            pub = sheets.published(rows[i], key)
            if pub is not None:
                ax.scatter([i], [pub], marker="x", color="#d62728", s=30, zorder=4)
        ax.set_title(column_label(key), fontsize=9)
        ax.set_xticks(x, names, rotation=70, ha="right", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    fig.suptitle(f"{spec.get('source', table)}: per-seed test F-scores (dots), their mean (bar), "
                 "the paper's number (red x)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, out)


# ---------------------------------------------------------------------------------------------- kinds

@dataclass(frozen=True)
class Figure:
    """A kind of figure: how `avvp figure` draws it (`draw(args, methods, out)`), the rows it shows by default
    (`methods`, or every row of `table`), whether it shows every seed (else the first), and which of each run's
    test outputs it reads ("predictions": predictions.npz, "metrics": metrics.json)."""
    draw: Callable
    methods: tuple[str, ...] = ()
    table: str | None = None
    every_seed: bool = False
    reads: str = "predictions"


def _first_seed(args) -> int:
    return args.seeds[0] if args.seeds else 0


def _timeline(args, methods: list[str], out: Path) -> None:
    timeline(Path(args.results), _two_methods(methods, "timeline", args.variants_file), _first_seed(args), out,
             variants_files=args.variants_file)


def _tsne(args, methods: list[str], out: Path) -> None:
    tsne(Path(args.results), _two_methods(methods, "tsne", args.variants_file), _first_seed(args), out,
         variants_files=args.variants_file)


def _spread(args, methods: list[str], out: Path) -> None:
    spread(Path(args.results), args.tables, args.seeds, out, FIGURES.get("spread").table, methods,
           args.variants_file)


# The paper's Fig. 2 compares ours with MA; Figs. 3-4 use MA* vs ours. Both figures here show MA and MA* + Ours
# on the first seed; the spread figure shows every Table 2 row over all seeds.
FIGURES.register("timeline", Figure(_timeline, methods=("MA", "MA* + Ours")))
FIGURES.register("tsne", Figure(_tsne, methods=("MA", "MA* + Ours")))
FIGURES.register("spread", Figure(_spread, table="table2", every_seed=True, reads="metrics"))


def main(args) -> None:
    out = Path(args.out)
    if out.suffix != ".png":
        raise AvvpError(f"{out}: --out must end in .png")
    figure = FIGURES.get(args.kind)
    figure.draw(args, args.methods or list(figure.methods), out)
