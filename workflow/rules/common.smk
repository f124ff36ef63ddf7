# Shared definitions of the workflow: the data folders, the runs each table needs, job resources.
# Functions only (no rules), so the rule files stay readable.

import dataclasses
import json
import os
import shlex
import shutil
import sys

import yaml

from avvp import paths, plugins, sheets
from avvp import variants as avvp_variants
from avvp.constants import DENSE_CSV, WEAK_CSV
from avvp.errors import AvvpError
from avvp.io import write_text
from avvp.reporting.figures import FIGURES as FIGURE_KINDS
from avvp.training import labels


# The shell commands call `avvp`. Snakemake may be started as .venv/bin/snakemake without the venv on PATH, so put
# the folder of the Python running Snakemake (where pip put the `avvp` script: venv, conda env) first. SLURM jobs
# re-read this file with the same Python, so they find the same `avvp`.
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
if shutil.which("avvp") is None:
    raise WorkflowError(f"the `avvp` command is not installed beside {sys.executable} (run .ci/setup)")


# --- plugins and the sheets -----------------------------------------------------------------------------------
# Plugin modules register their entries (a backbone, a label source, ...) before the sheets are read; every job
# gets them through the environment (`avvp` imports AVVP_PLUGINS first), SLURM jobs by re-reading this file.
PLUGINS = list(dict.fromkeys(plugins.from_env() + config["plugins"]))
VARIANTS_FILES = config["variants_files"]
TABLES_FILES = config["tables_files"]
try:
    plugins.load(PLUGINS)
    TABLES = sheets.tables(TABLES_FILES, VARIANTS_FILES)     # validates both sheets (one line per error)
    RECIPES = sheets.variants(VARIANTS_FILES).recipes
except AvvpError as e:
    raise WorkflowError(str(e)) from None
if PLUGINS:
    os.environ[plugins.ENV] = ",".join(PLUGINS)
for _recipe in config["lr_scale"]:
    if _recipe not in RECIPES:
        raise WorkflowError(f"config lr_scale: unknown recipe '{_recipe}' (known: {', '.join(RECIPES)})")
# slug -> row name, for the rows with runs of their own (a `runs_of` row scores another row's runs)
NAME = {avvp_variants.slug(n): n for n in avvp_variants.trained(VARIANTS_FILES)}
# The sheets as every avvp job reads them (each file named, in order).
VARIANTS_ARGS = " ".join(f"--variants-file {shlex.quote(f)}" for f in VARIANTS_FILES)
SHEET_ARGS = " ".join([VARIANTS_ARGS] + [f"--tables {shlex.quote(f)}" for f in TABLES_FILES])


def variant(slug):
    """A row resolved once (avvp.variants.Variant: model spec, recipe, losses, labels, gating), by slug."""
    return avvp_variants.get(NAME[slug], VARIANTS_FILES)


def variant_key(slug):
    """The row as resolved, less its prose: editing this row in variants.yaml retrains this row only."""
    key = dataclasses.asdict(variant(slug))
    key.pop("why")
    return json.dumps(key, sort_keys=True)


def table_variants(table):
    """The row names of one table, each once, in the table's order."""
    return list(dict.fromkeys(row["variant"] for row in TABLES[table]["rows"]))


# --- seeds, data ----------------------------------------------------------------------------------------------
DATASET = config["dataset"]
SYNTHETIC = DATASET["kind"] == "synthetic"
# The released protocol fixes every seed to 0 (docs/protocol.md#released-protocol): one run per row; more seeds
# would repeat it.
SEEDS = [0] if config["protocol"] == "released" else list(config["seeds"])
if config["protocol"] == "released" and config["seeds"] != [0]:
    logger.warning(f"protocol 'released' fixes the seed to 0: training seed 0 only (config seeds {config['seeds']})")

PACKED = str(paths.packed_dir(DATASET))
MANIFEST = str(paths.manifest_json(PACKED))
LLP_CSVS = [*WEAK_CSV.values(), *DENSE_CSV.values()]
# Large inputs (real LLP or the full synthetic preset) need more memory and time per job.
LARGE = not SYNTHETIC or DATASET["preset"] == "full"


def raw_data(wildcards):
    """The input of `pack`: the synthetic folder of this packed name, or the real LLP annotation files."""
    if wildcards.packed == "llp":
        if DATASET["kind"] != "llp":
            raise WorkflowError("data/packed/llp needs `dataset: {kind: llp, path: ...}` in the config")
        return [os.path.join(DATASET["path"], name) for name in LLP_CSVS]
    return [str(paths.synthetic_dir(wildcards.packed))]


def raw_folder(wildcards, input):
    """The LLP root folder given to `avvp pack --data`."""
    return DATASET["path"] if wildcards.packed == "llp" else input.raw[0]


def epochs_arg():
    """`--epochs N` when the config overrides the recipes' epochs."""
    return f"--epochs {config['epochs']}" if config["epochs"] else ""


def lr_scale_arg(wildcards):
    """`--lr-scale F` when the config scales the learning rate of this row's recipe."""
    scale = config["lr_scale"].get(variant(wildcards.slug).recipe_name, 1.0)
    return f"--lr-scale {scale}" if scale != 1.0 else ""


def refine_epochs_arg():
    """MA's step-1 epochs when the config overrides the recipes' epochs (avvp.paths.step1_epochs scales it)."""
    return f"--epochs {paths.step1_epochs(config['epochs'], VARIANTS_FILES)}" if config["epochs"] else ""


# --- runs -----------------------------------------------------------------------------------------------------
def train_inputs(wildcards):
    """The packed data, and the files of earlier stages the row's label source needs for this seed (MA's
    refined labels for `labels: refined`; avvp/training/labels.py)."""
    source = labels.LABEL_SOURCES.get(variant(wildcards.slug).labels)
    return {"manifest": MANIFEST, **{name: str(file.path(int(wildcards.seed))) for name, file in source.files.items()}}


def label_args(wildcards, input):
    """`--<name> PATH` for each file of the row's label source (e.g. --refined)."""
    return " ".join(f"--{name} {shlex.quote(input[name])}" for name in labels.files() if name in input.keys())


def test_metrics(names, seeds):
    return [str(paths.metrics_json(run_dir(n, s), "test")) for n in names for s in seeds]


def run_dir(name, seed):
    """The folder of a row's runs (that of the row it scores, for a `runs_of` row)."""
    return avvp_variants.run_dir(name, seed, paths.RESULTS, VARIANTS_FILES)


def table_inputs(wildcards):
    """Every row's test metrics for every seed; Table 4 also every row's FLOPs/params profile."""
    names = table_variants(wildcards.table)
    inputs = {"metrics": test_metrics(names, SEEDS), "config": str(paths.config_yaml()), "manifest": MANIFEST,
              "tables": TABLES_FILES}
    if TABLES[wildcards.table].get("extra"):
        inputs["profiles"] = [str(paths.profile_json(n)) for n in names]
    return inputs


# Every figure kind, with its rows, seeds and inputs as avvp/reporting/figures.py declares them.
FIGURES = FIGURE_KINDS.names()


def figure_methods(kind):
    figure = FIGURE_KINDS.get(kind)
    return list(figure.methods) or table_variants(figure.table)


def figure_seeds(kind):
    return SEEDS if FIGURE_KINDS.get(kind).every_seed else SEEDS[:1]


def figure_inputs(wildcards):
    methods, seeds = figure_methods(wildcards.kind), figure_seeds(wildcards.kind)
    if FIGURE_KINDS.get(wildcards.kind).reads == "metrics":
        return test_metrics(methods, seeds)
    return [str(paths.predictions_npz(run_dir(m, s), "test")) for m in methods for s in seeds]


def quoted(names):
    return " ".join(shlex.quote(str(n)) for n in names)


# --- CMPAE's thresholds (workflow/rules/thresholds.smk) ----------------------------------------------------

def tuned_slugs():
    """The slugs whose runs get a threshold search."""
    rows = [n for n in NAME.values() if avvp_variants.get(n, VARIANTS_FILES).gating == "cmpae"]
    rows += [r["variant"] for t in TABLES.values() if t.get("tune_thresholds") for r in t["rows"]]
    return {avvp_variants.get(n, VARIANTS_FILES).slug for n in rows}


TUNED = tuned_slugs()


def thresholds_input(wildcards):
    """evaluate's extra input: the run's thresholds file, for a tuned row."""
    if wildcards.slug in TUNED:
        return {"thresholds": str(paths.thresholds_json(paths.run_folder(wildcards.slug, wildcards.seed)))}
    return {}


def snapshot_arg(wildcards):
    """Which weights the search tunes: under the released protocol CMPAE's early snapshot (its recipe's
    `early_snapshot`), else (and for a row without one) the selected model."""
    early = config["protocol"] == "released" and "early_snapshot" in variant(wildcards.slug).recipe
    return "--snapshot early" if early else "--snapshot selected"


# --- JoMoLD's stages (workflow/rules/jomold.smk) ---------------------------------------------------------

ESTIMATOR_SLUG = avvp_variants.slug(paths.ESTIMATOR_ROW)


def estimator_lr_scale():
    """`--lr-scale F` when the config scales the estimator's recipe (JoMoLD's, as its stage 3)."""
    scale = config["lr_scale"].get(variant(ESTIMATOR_SLUG).recipe_name, 1.0)
    return f"--lr-scale {scale}" if scale != 1.0 else ""


def denoised_rows():
    """The rows of the tables on `labels: jomold` (JoMoLD's stage 3), each once."""
    rows = dict.fromkeys(v for t in TABLES for v in table_variants(t))
    return [n for n in rows if avvp_variants.get(n, VARIANTS_FILES).labels == "jomold"]


def denoise_quality_inputs(wildcards):
    if variant(wildcards.slug).labels != "jomold":
        raise WorkflowError(f"denoise_quality: row '{NAME[wildcards.slug]}' is not on `labels: jomold`")
    return {"done": str(paths.done_json(paths.run_folder(wildcards.slug, wildcards.seed))),
            "ratios": str(paths.noise_ratios(wildcards.seed)), "manifest": MANIFEST}


# --- resources ------------------------------------------------------------------------------------------------
CUDA = config["device"] == "cuda"
# `gpu` is what the SLURM executor turns into --gpus; locally it limits concurrent GPU jobs (profiles/default).
GPUS = config["slurm"]["gpus_per_job"] if CUDA else 0
# CUDA jobs: K jobs per GPU for avvp/training/slots.py (AVVP_GPU_SLOTS, ignored under SLURM) and the graphed-step switch,
# both passed as rule params (empty on CPU, so CPU commands are unchanged). A graphed and an eager step compute the
# same function, but on a GPU their random draws (dropout) come in another order, so the switch is a real setting.
GPU_ENV = f"AVVP_GPU_SLOTS={config['gpu_slots']} " if CUDA else ""
GRAPHS_ARG = f" --graphs {'on' if config['cuda_graphs'] else 'off'}" if CUDA else ""
# Partition and account of every SLURM job, from the config; absent keys leave the cluster's defaults.
SLURM = {f"slurm_{key}": config["slurm"][key] for key in ("partition", "account") if config["slurm"][key]}


# --- checks ---------------------------------------------------------------------------------------------------
def resolve_config(manifest, out, log):
    """Check the packed data's annotation version against the config's, then write the config as run.

    `avvp table` reads this file, so the tables describe the config actually used (including --config
    overrides) rather than config/config.yaml.
    """
    with open(manifest) as f:
        found = str(json.load(f).get("annotation_version", "unknown"))
    wanted = str(config["annotation_version"])
    if wanted != "auto" and wanted != found:
        raise WorkflowError(f"{manifest}: annotation_version is '{found}' but the config asks for '{wanted}'")
    write_text(out, yaml.safe_dump({**config, "seeds": SEEDS}, sort_keys=False))
    write_text(log, f"annotation_version: config {wanted}, {manifest} {found}: ok\n")
