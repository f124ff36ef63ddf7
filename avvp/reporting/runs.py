"""`avvp runs`: results/runs.csv, one tidy line per (row, seed, split, gating) of every run that exists.

The tables show means; this file holds every number they are made of, with the run's settings (run.json), its
selected epoch and time (done.json) and its environment, so `pandas.read_csv("results/runs.csv")` answers
what the tables do not. Columns: docs/outputs.md#resultsrunscsv. A `.parquet` copy is written beside it when pyarrow
is installed. A run appears once it is trained (done.json); each split once it is evaluated
(metrics_by_gating.json); a run without either is skipped, never half-written.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from avvp import outputs, paths
from avvp.errors import AvvpError
from avvp.evaluation.metrics import COLUMNS
from avvp.io import write_bytes, write_text

SPLITS = ("val", "test")
# The ten numbers as columns: segment.audio -> segment_audio.
NUMBER_COLUMNS = [c.replace(".", "_") for c in COLUMNS]
# run.json's environment (avvp.training.tracking.environment), each as a column of its own.
ENVIRONMENT = ("python", "torch", "cuda", "cudnn", "device_name", "cpu_capability", "torch_threads", "deterministic")


def run_folders(results: str | Path) -> list[Path]:
    """Every trained run folder (done.json present), by row then seed number."""
    found = Path(results).glob("runs/*/seed*/done.json")
    folders = [f.parent for f in found if paths.seed_of(f.parent) is not None]
    return sorted(folders, key=lambda p: (p.parent.name, paths.seed_of(p)))


def read_log(run: str | Path) -> pd.DataFrame:
    """log.csv of a run: one line per epoch (epoch, lr, loss_<term>..., <split>_<level>_<number>..., seconds)."""
    path = paths.log_csv(run)
    if not path.exists():
        raise AvvpError(f"{path}: missing (train it with: avvp train --out {run})")
    try:
        log = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise AvvpError(f"{path}: unreadable training log ({str(e).splitlines()[0]}); train it again") from None
    if "epoch" not in log.columns or log.empty:
        raise AvvpError(f"{path}: no epochs logged (train it again: avvp train --out {run})")
    return log


def settings(info: dict, done: dict) -> dict:
    """The run's settings (run.json) and its selection and time (done.json), as flat columns."""
    recipe = info.get("recipe") or {}
    env = info.get("environment") or {}
    return {
        "selected_epoch": done.get("selected_epoch"), "selected_by": done.get("selected_by"),
        "epochs": info.get("epochs"), "epochs_run": done.get("epochs_run"), "labels": info.get("labels"),
        "recipe": info.get("recipe_name"), "lr": recipe.get("lr"), "lr_scale": recipe.get("lr_scale", 1.0),
        "batch": recipe.get("batch"), "losses": "+".join(info.get("losses") or []),
        "model": json.dumps(info.get("spec"), sort_keys=True), "select": info.get("select"),
        "protocol": info.get("protocol"), "precision": info.get("precision"), "device": info.get("device"),
        "cuda_graphs": info.get("cuda_graphs"), "data_sha256": info.get("data_manifest_sha256"),
        "git_commit": info.get("git_commit"), "train_seconds": done.get("seconds"),
        **{f"env_{key}": env.get(key) for key in ENVIRONMENT},
    }


def run_lines(run: Path) -> list[dict]:
    """One line per (split, gating) of one run: each split that is evaluated, each gating it was scored under."""
    info, done = outputs.run_info(run), outputs.done(run)
    common = {"row": info.get("variant"), "slug": run.parent.name, "seed": paths.seed_of(run)}
    own = info.get("gating")
    rest = settings(info, done or {})
    lines = []
    for split in SPLITS:
        if not paths.by_gating_json(run, split).exists():
            continue
        by_gating = outputs.read_json(paths.by_gating_json(run, split),
                                      f"make it with: avvp evaluate --run {run} --split {split}")
        for gating in sorted(k for k, v in by_gating.items() if isinstance(v, dict)):
            numbers = outputs.numbers(run, COLUMNS, split, gating)
            lines.append({**common, "split": split, "gating": gating, "own_gating": gating == own,
                          **dict(zip(NUMBER_COLUMNS, numbers.tolist())), **rest})
    return lines


def frame(results: str | Path) -> pd.DataFrame:
    """Every line of every trained run under `results`."""
    runs = run_folders(results)
    if not runs:
        raise AvvpError(f"{Path(results) / 'runs'}: no trained run (done.json) to list; train some first, "
                        "e.g. snakemake --cores 4 results/table2.md")
    lines = [line for run in runs for line in run_lines(run)]
    if not lines:
        raise AvvpError(f"{Path(results) / 'runs'}: {len(runs)} trained runs but none evaluated "
                        "(make them with: avvp evaluate --run RUN --split test)")
    return pd.DataFrame.from_records(lines)


def parquet_bytes(table: pd.DataFrame) -> bytes | None:
    """The frame as parquet, or None when pyarrow is not installed (the CSV alone is written)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return None
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    return buf.getvalue()


def main(args) -> None:
    out = Path(args.out)
    if out.suffix != ".csv":
        raise AvvpError(f"{out}: --out must end in .csv (a .parquet is written beside it when pyarrow is installed)")
    table = frame(args.results)
    data = parquet_bytes(table)
    if data is not None:
        write_bytes(out.with_suffix(".parquet"), data)
    write_text(out, table.to_csv(index=False))  # last: the workflow's target
    print(f"{out}: {len(table)} lines ({table[['slug', 'seed']].drop_duplicates().shape[0]} runs)")
