# Shared definitions of the workflow: the sheets, the data folders, the runs each table needs, every input
# function of the rules, job resources. Functions only (no rules), so the rule files stay readable. Nothing here
# names a method: a method's stages, label sources and gatings come from the registries (avvp/registry.py).

import dataclasses
import json
import os
import shlex
import shutil
import sys

import yaml

from avvp import paths, plugins, sheets
from avvp import stages as avvp_stages
from avvp import variants as avvp_variants
from avvp.constants import DENSE_CSV, WEAK_CSV
from avvp.errors import AvvpError
from avvp.io import write_text
from avvp.registry import FIGURES as FIGURE_KINDS
from avvp.registry import GATINGS, LABEL_SOURCES, STAGES
from avvp.stages import RunPass, SeedFile
from avvp.training import label_sources


# The shell commands call `avvp`. Snakemake may be started as .venv/bin/snakemake without the venv on PATH, so put
# the folder of the Python running Snakemake (where pip put the `avvp` script: venv, conda env) first. SLURM jobs
# re-read this file with the same Python, so they find the same `avvp`.
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
if shutil.which("avvp") is None:
    raise WorkflowError(f"the `avvp` command is not installed beside {sys.executable} (run .ci/setup)")


# --- plugins and the sheets -----------------------------------------------------------------------------------
# Plugin modules register their entries (a backbone, a label source, a stage, ...) before the sheets are read;
# every job gets them through the environment (`avvp` imports AVVP_PLUGINS first), SLURM jobs by re-reading this
# file.
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
# The stages with a generic rule (workflow/rules/stages.smk), each kind in registration order.
RUN_PASSES = [stage for stage in STAGES.values() if isinstance(stage, RunPass)]
SEED_FILES = [stage for stage in STAGES.values() if isinstance(stage, SeedFile)]


def variant(slug):
    """A row resolved once (avvp.variants.Variant: model spec, recipe, losses, labels, gating), by slug."""
    return avvp_variants.get(NAME[slug], VARIANTS_FILES)


def row(name):
    """A row resolved, by name (a `runs_of` row too)."""
    return avvp_variants.get(name, VARIANTS_FILES)


def variant_key(slug):
    """The row as resolved, less its prose: editing this row in variants.yaml retrains this row only."""
    key = dataclasses.asdict(variant(slug))
    key.pop("why")
    return json.dumps(key, sort_keys=True)


def table_variants(table):
    """The row names of one table, each once, in the table's order."""
    return list(dict.fromkeys(r["variant"] for r in TABLES[table]["rows"]))


def tabled_rows():
    """Every row of every table, each once, in the tables' order."""
    return list(dict.fromkeys(name for table in TABLES for name in table_variants(table)))


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


def epochs_arg(wildcards):
    """`--epochs N` when the config overrides the recipes' epochs (a row that sets its own epochs trains the same
    share of N: avvp.variants.epochs_under)."""
    epochs = avvp_variants.epochs_under(NAME[wildcards.slug], config["epochs"], VARIANTS_FILES)
    return f"--epochs {epochs}" if epochs else ""


def lr_scale_arg(wildcards):
    """`--lr-scale F` when the config scales the learning rate of this row's recipe."""
    scale = config["lr_scale"].get(variant(wildcards.slug).recipe_name, 1.0)
    return f"--lr-scale {scale}" if scale != 1.0 else ""


# --- runs -----------------------------------------------------------------------------------------------------
def label_files(name, seed):
    """The per-seed files the label source of a row trains on, by option (each made by its stage's rule)."""
    source = LABEL_SOURCES.get(row(name).labels)
    return {option: label_sources.seed_file(option, seed) for option in source.files}


def train_inputs(wildcards):
    """The packed data, and the files of earlier stages the row's label source needs for this seed."""
    return {"manifest": MANIFEST, **label_files(NAME[wildcards.slug], wildcards.seed)}


def label_args(wildcards, input):
    """`--<option> PATH` for each file of the row's label source."""
    return " ".join(f"--{avvp_stages.option_flag(option)} {shlex.quote(input[option])}"
                    for option in label_sources.options() if option in input.keys())


def run_dir(name, seed):
    """The folder of a row's runs (that of the row it scores, for a `runs_of` row)."""
    return avvp_variants.run_dir(row(name), seed)


def test_metrics(names, seeds):
    return [str(paths.metrics_json(run_dir(n, s), "test")) for n in names for s in seeds]


def table_inputs(wildcards):
    """Every row's test metrics for every seed; a table with `extra` costs also every row's FLOPs/params profile."""
    names = table_variants(wildcards.table)
    inputs = {"metrics": test_metrics(names, SEEDS), "config": str(paths.config_yaml()), "manifest": MANIFEST,
              "tables": TABLES_FILES}
    if TABLES[wildcards.table].get("extra"):
        inputs["profiles"] = [str(paths.profile_file(paths.slug(n))) for n in names]
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


# --- gatings with a per-run file ------------------------------------------------------------------------------

def gated_slugs(gating):
    """The slugs whose runs are scored under `gating` with its per-run file: those of the rows whose own gating it
    is, and of every row of a table that sets `tune_thresholds: true` (every gating of such a table gets its file,
    so the table can say how much of each row's number is its decision rule)."""
    names = [n for n in avvp_variants.names(VARIANTS_FILES) if row(n).gating == gating]
    names += [r["variant"] for t in TABLES.values() if t.get("tune_thresholds") for r in t["rows"]]
    return {row(n).runs for n in names}


# gating -> the slugs whose runs get its per-run file (its declared stage makes it: a pass over the run).
GATED = {name: gated_slugs(name) for name, gating in GATINGS.items() if gating.params is not None}


def gating_files(wildcards):
    """evaluate's extra inputs: the per-run file of every gating this run is scored under with one."""
    run = paths.run_folder(wildcards.slug, wildcards.seed)
    return {f"gating_{name}": str(GATINGS.get(name).params.path(run)) for name, slugs in GATED.items()
            if wildcards.slug in slugs}


# --- the generic rules' inputs (workflow/rules/stages.smk) ----------------------------------------------------

def pass_inputs(stage):
    """A pass over a run: its done.json, the packed data, the row's label-source files the stage reads, and for
    evaluate the files of the gatings it is scored under."""
    def inputs(wildcards):
        run = paths.run_folder(wildcards.slug, wildcards.seed)
        out = {"done": str(paths.done_json(run)), "manifest": MANIFEST}
        files = label_files(NAME[wildcards.slug], wildcards.seed)
        missing = [f for f in stage.label_files if f not in files]
        if missing:
            raise WorkflowError(f"{stage.rule}: row '{NAME[wildcards.slug]}' has no label file '{missing[0]}' "
                                f"(its label source is '{variant(wildcards.slug).labels}')")
        out.update({f: files[f] for f in stage.label_files})
        if stage.gating_files:
            out.update(gating_files(wildcards))
        return out
    return inputs


def pass_options(stage):
    """The stage's own options from the row and the config (RunPass.args)."""
    return lambda wildcards: stage.args(variant(wildcards.slug), config) if stage.args else ""


def out_path(stage, wildcards, output):
    """What a stage's `--out` gets: its file `out`, or that file's folder."""
    path = output[stage.out]
    return path if stage.out_file else os.path.dirname(path)


def pass_applies(stage, name):
    """Whether a pass applies to a row's runs: the row's label source has every file the stage reads."""
    return all(f in LABEL_SOURCES.get(row(name).labels).files for f in stage.label_files)


def target_files(stage):
    """Every file of a pass with a target, over the tables' rows it applies to and every seed."""
    names = [n for n in tabled_rows() if n in NAME.values() and pass_applies(stage, n)]
    return [stage.output(name_, slug=paths.slug(n), seed=s) for n in names for s in SEEDS for name_ in stage.outputs]


def seed_file_inputs(stage):
    """A per-seed stage's inputs: the packed data, and the done.json of its row's run of the seed (if it reads one)."""
    def inputs(wildcards):
        out = {"manifest": MANIFEST}
        if stage.row is not None:
            out["done"] = str(paths.done_json(paths.run_folder(paths.slug(stage.row), wildcards.seed)))
        return out
    return inputs


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


def minutes(stage):
    """A stage's SLURM runtime (minutes): its declared small or large figure."""
    return stage.minutes[1] if LARGE else stage.minutes[0]


def pass_resources(stage):
    """A pass's (or a per-seed stage's) job: its memory, runtime, a GPU slot under cuda, the SLURM partition."""
    return {"mem_mb": 8000 if LARGE else 2000, "runtime": minutes(stage), "gpu": GPUS, **SLURM}


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
