"""The one home of the results and data layout, and of the names derived from the config.

Pure Python (no torch): the workflow imports it. Every function takes wildcard text as well as values, so
the rules spell their patterns through it too: `run_folder("{slug}", "{seed}")`. A method's own files are named
in its folder (avvp/methods/<paper>/), through these functions (`seed_folder`, a run's files).

    data/synthetic/<preset>-s<seed>/         `avvp synth`
    data/packed/<packed>/                    `avvp pack`: manifest.json, <split>/*.npy
    results/<stage>/seed<S>/                 a per-seed stage's files (a label source's: avvp/stages.py SeedFile)
    results/runs/<slug>/seed<S>/             run.json, log.csv, last.pt, best.pt, done.json, <snapshot>.pt
    results/runs/<slug>/seed<S>/<split>/     metrics.json, predictions.npz, per_video.npz, metrics_by_gating.json
    results/profile/<slug>.json              parameters and FLOPs
    results/<table>.md, .csv, .html          the tables; results/figures/<kind>.png the figures
    results/figures/curves_<table>.png       training curves; results/runs.csv every run's numbers
    results/tensorboard/<slug>/seed<S>/      TensorBoard event files (config `tracking: tensorboard`)
    results/logs/<stage>/..., results/benchmarks/<stage>/...
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = "results"
DATA = "data"


def slug(name: str) -> str:
    """A file-system name for a row: 'MA* + CM-Co' -> 'ma_star_cm_co'."""
    s = name.replace("*", "_star").lower()
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")


# --- data -----------------------------------------------------------------------------------------------------
def packed_name(dataset_cfg: dict) -> str | None:
    """'default-s0' for the synthetic preset `default` made with seed 0, 'llp' for the real data."""
    kind = dataset_cfg.get("kind")
    if kind == "synthetic":
        return f"{dataset_cfg.get('preset', 'default')}-s{dataset_cfg.get('seed', 0)}"
    return "llp" if kind == "llp" else None


def packed_folder(name: str, data: str | Path = DATA) -> Path:
    return Path(data) / "packed" / name


def packed_dir(dataset_cfg: dict, data: str | Path = DATA) -> Path | None:
    """The packed folder the workflow makes for this config's `dataset`."""
    name = packed_name(dataset_cfg)
    return None if name is None else packed_folder(name, data)


def synthetic_dir(name: str, data: str | Path = DATA) -> Path:
    return Path(data) / "synthetic" / name


def manifest_json(packed: str | Path) -> Path:
    return Path(packed) / "manifest.json"


# --- runs -----------------------------------------------------------------------------------------------------
def run_folder(slug_: str, seed, results: str | Path = RESULTS) -> Path:
    """The run folder of a slug (or the `{slug}` wildcard) and seed: `avvp train`'s. A row's runs are those of
    its `runs` slug (avvp.variants.run_dir), another row's for a `runs_of` row."""
    return Path(results) / "runs" / slug_ / seed_name(seed)


def seed_name(seed) -> str:
    """A seed's folder name: 'seed0' (the one place it is spelled; `seed_of` reads it back)."""
    return f"seed{seed}"


def seed_of(folder: str | Path) -> int | None:
    """The seed of a seed folder ('.../seed3' -> 3), or None when the name is not one."""
    name = Path(folder).name
    return int(name[4:]) if name.startswith("seed") and name[4:].isdigit() else None


def seed_folder(stage: str, seed, results: str | Path = RESULTS) -> Path:
    """A per-seed stage's folder, results/<stage>/seed<S> (what a label source trains on is kept there)."""
    return Path(results) / stage / seed_name(seed)


def done_json(run: str | Path) -> Path:
    return Path(run) / "done.json"  # written last by `avvp train`: the run is complete


def run_json(run: str | Path) -> Path:
    return Path(run) / "run.json"


def best_pt(run: str | Path) -> Path:
    """The weights of the selected epoch: what `avvp evaluate` scores."""
    return Path(run) / "best.pt"


def last_pt(run: str | Path) -> Path:
    """The last epoch's weights, optimiser and training state: what a resumed `avvp train` starts from."""
    return Path(run) / "last.pt"


def log_csv(run: str | Path) -> Path:
    return Path(run) / "log.csv"


def snapshot_pt(run: str | Path, name: str) -> Path:
    """The weights of an epoch the recipe keeps by name (`snapshots: {name: epoch}`, avvp.training.train)."""
    return Path(run) / f"{name}.pt"


def metrics_json(run: str | Path, split: str) -> Path:
    """The ten numbers under the row's own gating, in `avvp score`'s schema; written last by `avvp evaluate`."""
    return Path(run) / split / "metrics.json"


def predictions_npz(run: str | Path, split: str) -> Path:
    return Path(run) / split / "predictions.npz"


def per_video_npz(run: str | Path, split: str) -> Path:
    """`avvp evaluate`'s per-video scores beside metrics.json: `filenames`, `columns` (metrics.COLUMNS),
    `own_gating`, and one (videos, 10) array in [0, 1] per registered gating. The tables read it and never
    re-score."""
    return Path(run) / split / "per_video.npz"


def by_gating_json(run: str | Path, split: str) -> Path:
    """The ten numbers under each registered gating, {"own": gating, "<gating>": {...}, ...}, beside metrics.json."""
    return Path(run) / split / "metrics_by_gating.json"


# --- reports --------------------------------------------------------------------------------------------------
def profile_file(slug_: str, results: str | Path = RESULTS) -> Path:
    return Path(results) / "profile" / f"{slug_}.json"


def table_md(table: str, results: str | Path = RESULTS) -> Path:
    return Path(results) / f"{table}.md"


def table_csv(table: str, results: str | Path = RESULTS) -> Path:
    return Path(results) / f"{table}.csv"


def figure_png(kind: str, results: str | Path = RESULTS) -> Path:
    return Path(results) / "figures" / f"{kind}.png"


def curves_png(table: str, results: str | Path = RESULTS) -> Path:
    """The training curves of a table's rows (`avvp table --curves`)."""
    return Path(results) / "figures" / f"curves_{table}.png"


def table_html(table: str, results: str | Path = RESULTS) -> Path:
    """A table as one HTML page with its curves (`avvp table --html`): what the Snakemake report shows."""
    return Path(results) / f"{table}.html"


def runs_csv(results: str | Path = RESULTS) -> Path:
    """Every run's numbers and settings, one line per row, seed, split and gating (`avvp runs`)."""
    return Path(results) / "runs.csv"


def tensorboard_root(results: str | Path = RESULTS) -> Path:
    """TensorBoard event files of the workflow's runs: <root>/<slug>/seed<S> (`avvp train --tensorboard`)."""
    return Path(results) / "tensorboard"


def diagnostics_dir(results: str | Path = RESULTS) -> Path:
    """`avvp diagnose`'s CSVs and figures (the workflow's diagnose rule)."""
    return Path(results) / "diagnostics"


def config_yaml(results: str | Path = RESULTS) -> Path:
    """The config as run (written by the workflow, read by `avvp table`)."""
    return Path(results) / "config.yaml"


def log_file(stage: str, job: str | None = None, results: str | Path = RESULTS) -> Path:
    """A job's log, results/logs/<stage>/<job>.log (results/logs/<stage>.log for a stage of one job)."""
    return Path(results) / "logs" / (f"{stage}.log" if job is None else f"{stage}/{job}.log")


def benchmark_file(stage: str, job: str, results: str | Path = RESULTS) -> Path:
    return Path(results) / "benchmarks" / stage / f"{job}.tsv"
