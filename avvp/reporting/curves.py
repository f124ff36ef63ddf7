"""Training curves of a table's rows: results/figures/curves_<table>.png (`avvp table --curves`).

Small multiples, one cell per row of the table: on top the selection metric per epoch (validation segment-level
Type@AV under the default protocol, as log.csv recorded it), below the training loss (the sum of the loss terms
the row trains with), each seed a thin line, their mean bold, each seed's selected epoch (done.json) a dot. The
cell's title says which epochs were selected, so a row still improving at its last epoch shows at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avvp import outputs, paths, variants
from avvp.errors import AvvpError
from avvp.io import save_figure
from avvp.reporting import EVENT_TYPES, LEVEL_NAMES
from avvp.reporting.runs import read_log

SEED_COLOUR, MEAN_COLOUR, LOSS_COLOUR = "#6baed6", "#08519c", "#a63603"
NCOLS = 5


@dataclass
class Curve:
    """One run's log: epochs, the selection metric (None: no split scored, the last epoch kept), the total loss,
    and the selected epoch."""
    epochs: np.ndarray
    metric: np.ndarray | None
    loss: np.ndarray
    selected: int
    metric_name: str | None


def metric_column(selected_by: str | None) -> str | None:
    """done.json's `selected_by` ('val segment type_av') as its log.csv column ('val_segment_type_av');
    None for a run that kept its last epoch."""
    parts = (selected_by or "").split()
    return "_".join(parts) if len(parts) == 3 else None


def metric_label(column: str) -> str:
    """'val_segment_type_av' -> 'val Type@AV Seg.'."""
    split, level, key = column.split("_", 2)
    return f"{split} {EVENT_TYPES.get(key, key)} {LEVEL_NAMES.get(level, level)}"


def curve(run: Path) -> Curve:
    """The curve of one trained run, from its log.csv and done.json."""
    done = outputs.done(run)
    if done is None:
        raise AvvpError(f"{paths.done_json(run)}: missing (train it with: avvp train --out {run})")
    log = read_log(run)
    column = metric_column(done.get("selected_by"))
    if column is not None and column not in log.columns:
        raise AvvpError(f"{paths.log_csv(run)}: no column '{column}' (the selection metric of done.json)")
    terms = [c for c in log.columns if c.startswith("loss_")]
    return Curve(epochs=log["epoch"].to_numpy(int), metric=None if column is None else log[column].to_numpy(float),
                 loss=log[terms].sum(axis=1).to_numpy(float), selected=int(done["selected_epoch"]),
                 metric_name=column)


def mean_curve(curves: list[Curve], attr: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, mean over the seeds that reached each epoch) of `attr`: an early-stopped seed leaves the mean
    to the others rather than ending it."""
    epochs = np.unique(np.concatenate([c.epochs for c in curves]))
    table = np.full((len(curves), len(epochs)), np.nan)
    for i, c in enumerate(curves):
        values = getattr(c, attr)
        if values is not None:
            table[i, np.searchsorted(epochs, c.epochs)] = values
    with np.errstate(all="ignore"):
        counts = np.isfinite(table).sum(axis=0)
        mean = np.where(counts > 0, np.nansum(table, axis=0) / np.maximum(counts, 1), np.nan)
    return epochs, mean


def _panel(ax, curves: list[Curve], attr: str, colour: str) -> None:
    for c in curves:
        values = getattr(c, attr)
        ax.plot(c.epochs, values, color=colour, lw=0.8, alpha=0.55)
        at = np.flatnonzero(c.epochs == c.selected)
        if at.size:
            ax.plot([c.selected], [values[at[0]]], "o", ms=4, color=MEAN_COLOUR, zorder=4)
    epochs, mean = mean_curve(curves, attr)
    ax.plot(epochs, mean, color=MEAN_COLOUR if attr == "metric" else LOSS_COLOUR, lw=2.2)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)


def cell_title(label: str, curves: list[Curve]) -> str:
    """'HAN + CM-S' / 'selected 6, 6, 5 of 6 (2/3 at the last)'."""
    last = [int(c.epochs.max()) for c in curves]
    at_last = sum(c.selected == e for c, e in zip(curves, last))
    chosen = ", ".join(str(c.selected) for c in curves)
    return f"{label}\nselected {chosen} of {max(last)} ({at_last}/{len(curves)} at the last)"


def _cell(fig, spec, label: str, curves: list[Curve]) -> None:
    top = fig.add_subplot(spec[0])
    bottom = fig.add_subplot(spec[1], sharex=top)
    name = next((c.metric_name for c in curves if c.metric_name), None)
    if name is None:
        top.text(0.5, 0.5, "no selection split\n(last epoch kept)", ha="center", va="center",
                 transform=top.transAxes, fontsize=8, color="grey")
        top.set_yticks([])
    else:
        _panel(top, [c for c in curves if c.metric is not None], "metric", SEED_COLOUR)
        top.set_ylabel(metric_label(name), fontsize=7)
    _panel(bottom, curves, "loss", "#f16913")
    bottom.set_ylabel("train loss", fontsize=7)
    bottom.set_xlabel("epoch", fontsize=7)
    top.tick_params(labelbottom=False)
    top.set_title(cell_title(label, curves), fontsize=8)
    epochs = np.unique(np.concatenate([c.epochs for c in curves]))
    step = max(1, int(np.ceil(len(epochs) / 10)))
    bottom.set_xticks(epochs[::step])


def draw(rows: list[tuple[str, list[Path]]], out: Path, title: str) -> None:
    """One cell per (label, run folders of its seeds); the figure at `out`."""
    from avvp.reporting.figures import _pyplot

    if not rows:
        raise AvvpError(f"{out}: no rows to draw")
    curves = [(label, [curve(r) for r in runs]) for label, runs in rows]
    plt = _pyplot()
    ncols = min(NCOLS, len(rows))
    nrows = int(np.ceil(len(rows) / ncols))
    fig = plt.figure(figsize=(3.4 * ncols, 3.9 * nrows + 0.8))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.38, wspace=0.35)
    for k, (label, cs) in enumerate(curves):
        _cell(fig, outer[k // ncols, k % ncols].subgridspec(2, 1, hspace=0.08), label, cs)
    fig.suptitle(f"{title}\nper row: selection metric (top) and training loss (bottom) per epoch; thin: each seed, "
                 "bold: their mean, dots: each seed's selected epoch", fontsize=10)
    fig.subplots_adjust(top=1 - 0.9 / (3.9 * nrows + 0.8), bottom=0.06, left=0.05, right=0.98)
    save_figure(fig, out)


def table_curves(spec: dict, rows_: dict, results: Path, seeds: list[int], out: Path, table: str) -> None:
    """The curves figure of one table of the tables sheet (`rows_`: its rows resolved, by name): each distinct set
    of runs once, in the table's order (a `runs_of` row, another row's runs under another gating, has the curves
    of that row)."""
    rows, seen = [], set()
    for r in spec["rows"]:
        runs = [variants.run_dir(rows_[r["variant"]], s, results) for s in seeds]
        if tuple(runs) in seen:
            continue
        seen.add(tuple(runs))
        rows.append((r.get("label", r["variant"]), runs))
    draw(rows, out, f"{spec.get('source', table)} ({table}): training curves, seeds {', '.join(map(str, seeds))}")
