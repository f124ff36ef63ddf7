"""The one home of the results and data layout, and of the names derived from the config.

Pure Python (no torch): the workflow imports it. Every function takes wildcard text as well as values, so
the rules spell their patterns through it too: `run_folder("{slug}", "{seed}")`.

    data/synthetic/<preset>-s<seed>/         `avvp synth`
    data/packed/<packed>/                    `avvp pack`: manifest.json, <split>/*.npy
    results/refine/seed<S>/                  refined_labels.npz, summary.json
    results/jomold/seed<S>/                  estimator/ (JoMoLD's stage 1, a run folder), noise_ratios.json
    results/runs/<slug>/seed<S>/             run.json, log.csv, last.pt, best.pt, done.json
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

# The row of config/variants.yaml that `avvp refine` trains (MA's step 1).
REFINE_ROW = "MA step 1"
# The row JoMoLD's stage 1 trains (its noise estimator), per seed, for every `labels: jomold` row.
ESTIMATOR_ROW = "JoMoLD noise estimator"


def step1_epochs(epochs_override: int | None, variants_files=None) -> int:
    """MA's step-1 epochs: the refine row's own (12, its override of HAN's 40), or, when the config overrides
    every recipe's epochs with N, the same share of N: round(N * 12 / 40), at least 1."""
    from avvp import sheets, variants   # not at the top: the sheets name paths

    row = variants.get(REFINE_ROW, variants_files)
    if not epochs_override:
        return row.recipe["epochs"]
    full = sheets.variants(variants_files).recipes[row.recipe_name]["epochs"]
    return max(1, round(epochs_override * row.recipe["epochs"] / full))


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
    """The run folder of a row's slug (or the `{slug}` wildcard) and seed."""
    return Path(results) / "runs" / slug_ / f"seed{seed}"


def run_dir(name: str, seed, results: str | Path = RESULTS) -> Path:
    """The run folder of a row by its name ('MA* + Ours') and seed."""
    return run_folder(slug(name), seed, results)


def row_runs(name: str, results: str | Path = RESULTS) -> Path:
    """The folder holding every seed's run of a row."""
    return run_folder(slug(name), 0, results).parent


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


def early_pt(run: str | Path) -> Path:
    """The weights after the recipe's `early_snapshot` epoch (CMPAE's epoch-8 snapshot, what its release tunes
    its thresholds on); only runs whose recipe names one have it."""
    return Path(run) / "early.pt"


def thresholds_json(run: str | Path) -> Path:
    """The run's CMPAE visual thresholds (`avvp thresholds`), read by `avvp evaluate` for the `cmpae` gating."""
    return Path(run) / "thresholds.json"


def metrics_json(run: str | Path, split: str) -> Path:
    """The ten numbers under the row's own gating, in `avvp score`'s schema; written last by `avvp evaluate`."""
    return Path(run) / split / "metrics.json"


def predictions_npz(run: str | Path, split: str) -> Path:
    return Path(run) / split / "predictions.npz"


def per_video_npz(run: str | Path, split: str) -> Path:
    """`avvp evaluate`'s per-video scores beside metrics.json: `filenames`, `columns` (metrics.COLUMNS),
    `own_gating`, and one (videos, 10) array in [0, 1] per gating ('han', 'ma'). The tables read it and
    never re-score."""
    return Path(run) / split / "per_video.npz"


def by_gating_json(run: str | Path, split: str) -> Path:
    """The ten numbers under each gating, {"own": gating, "han": {...}, "ma": {...}}, beside metrics.json."""
    return Path(run) / split / "metrics_by_gating.json"


def refine_dir(seed, results: str | Path = RESULTS) -> Path:
    return Path(results) / "refine" / f"seed{seed}"


def refined_labels(seed, results: str | Path = RESULTS) -> Path:
    return refined_labels_file(refine_dir(seed, results))


def refine_summary(seed, results: str | Path = RESULTS) -> Path:
    return refine_summary_file(refine_dir(seed, results))


# `avvp refine --out` may be any folder; these name its files (the workflow's is refine_dir).
def refined_labels_file(out: str | Path) -> Path:
    return Path(out) / "refined_labels.npz"


def refine_summary_file(out: str | Path) -> Path:
    return Path(out) / "summary.json"


def step1_folder(out: str | Path) -> Path:
    """MA's step-1 training run inside a refine folder (a run folder: last.pt, best.pt, log.csv)."""
    return Path(out) / "step1"


def jomold_dir(seed, results: str | Path = RESULTS) -> Path:
    return Path(results) / "jomold" / f"seed{seed}"


def estimator_folder(seed, results: str | Path = RESULTS) -> Path:
    """JoMoLD's stage 1: the noise estimator's run folder (run.json, last.pt, best.pt, done.json)."""
    return jomold_dir(seed, results) / "estimator"


def noise_ratios(seed, results: str | Path = RESULTS) -> Path:
    """JoMoLD's stage 2: the per-class noise ratios (avvp/training/denoise.py's format)."""
    return jomold_dir(seed, results) / "noise_ratios.json"


def denoise_quality(slug_: str, seed, results: str | Path = RESULTS) -> Path:
    """The removals of a `labels: jomold` run scored as MA's refinement (`avvp denoise-quality`)."""
    return diagnostics_dir(results) / "denoise_quality" / f"{slug_}-seed{seed}.json"


# --- reports --------------------------------------------------------------------------------------------------
def profile_json(name: str, results: str | Path = RESULTS) -> Path:
    """Parameters and FLOPs of a row, by its name."""
    return profile_file(slug(name), results)


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


# What `avvp diagnose` writes into its folder (README "Diagnostics"), by what it holds; the workflow asks for all.
DIAGNOSTICS = {"per_class_f": "per_class_f.csv", "per_class_diff": "per_class_diff.png", "leak": "leak.csv",
               "leak_figure": "leak.png", "cooccurrence": "cooccurrence.csv",
               "cooccurrence_matrices": "cooccurrence_matrices.csv", "cooccurrence_figure": "cooccurrence.png",
               "refinement": "refinement.csv", "refinement_figure": "refinement.png"}
DIAGNOSED_TABLE = "table2"   # whose rows the workflow (and `avvp diagnose` by default) diagnoses


def diagnostic(name: str, out: str | Path) -> Path:
    """One of `avvp diagnose`'s files in its --out folder, by its DIAGNOSTICS name."""
    return Path(out) / DIAGNOSTICS[name]


def config_yaml(results: str | Path = RESULTS) -> Path:
    """The config as run (written by the workflow, read by `avvp table`)."""
    return Path(results) / "config.yaml"


def log_file(stage: str, job: str | None = None, results: str | Path = RESULTS) -> Path:
    """A job's log, results/logs/<stage>/<job>.log (results/logs/<stage>.log for a stage of one job)."""
    return Path(results) / "logs" / (f"{stage}.log" if job is None else f"{stage}/{job}.log")


def benchmark_file(stage: str, job: str, results: str | Path = RESULTS) -> Path:
    return Path(results) / "benchmarks" / stage / f"{job}.tsv"


# --- faults ---------------------------------------------------------------------------------------------------
def rebuildable(results: str | Path = RESULTS, data: str | Path = DATA) -> list[tuple[str, tuple[str, ...]]]:
    """The files the workflow makes again when they are unreadable (truncated, damaged): glob patterns, each
    with the names of the files in its folder that go with it: the other outputs of the job that made it.

    The workflow removes an unreadable match and its companions when it starts (avvp.io.remove_unreadable);
    Snakemake then makes them again when anything needs them: a job with all its outputs gone is re-run by the
    next job that asks for one of them, while outputs made from the file before it was damaged stay valid.
    (Removing only a file no rule asks for, such as per_video.npz, would never re-run its job.) best.pt goes
    with done.json: `avvp train` starts a run over when its best weights are gone. A new cache file (a method's
    noise ratios, its thresholds) needs one line here and a reader that uses avvp.io.read_json / read_npz.
    """
    run = run_folder("*", "*", results)
    per_split = [metrics_json(run, "*"), predictions_npz(run, "*"), per_video_npz(run, "*"), by_gating_json(run, "*")]
    refine = [refined_labels("*", results), refine_summary("*", results)]
    estimator = estimator_folder("*", results)
    return [(str(done_json(run)), ()), (str(best_pt(run)), (done_json(run).name,)),
            (str(thresholds_json(run)), ()),
            (str(done_json(estimator)), ()), (str(best_pt(estimator)), (done_json(estimator).name,)),
            (str(noise_ratios("*", results)), ()),
            *[(str(f), tuple(g.name for g in group if g != f)) for group in (per_split, refine) for f in group],
            (str(profile_file("*", results)), ()), (str(manifest_json(packed_folder("*", data))), ())]
