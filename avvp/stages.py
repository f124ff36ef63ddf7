"""The workflow's stages as registry entries: each an `avvp` subcommand, its files, and for the generic kinds the
Snakemake rule that runs it.

A stage declares its subcommand (`command`, `help`, its `arguments` and the "module:function" that runs them),
the files it writes as path templates over its wildcards (`files`: "results/runs/{slug}/seed{seed}/done.json"),
which of them Snakemake tracks (`outputs`) and which are made again when found unreadable (`rebuildable`). The
CLI (avvp/cli.py), `rebuildable()` (the workflow's start-up check) and the workflow's generic rules
(workflow/rules/stages.smk) derive from these entries, so a method brings its stages from its own folder (or a
plugin from outside) and the core names none of them. The kinds with a generic rule:

- `Train`: train a row (one seed): rule `train`, for every row of the sheets.
- `RunPass`: a pass over one trained run (its selected weights): evaluation, a gating's per-run file, a
  diagnostic. Rule named after the stage; its `files` are templates over {slug}, {seed} and its own wildcards.
- `SeedFile`: a per-seed file made from the run of one row (MA's refined labels from "MA step 1", JoMoLD's
  noise ratios from its estimator): what a label source trains on. Rule named after the stage, over {seed}.

Every other stage (`Stage`: synth, pack, score, profile, table, runs, figure, diagnose) is one of a kind, with
its own rule in workflow/rules/ (or none). This module needs no torch.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from avvp import paths
from avvp.registry import LABEL_SOURCES, STAGES


@dataclass(frozen=True, kw_only=True)
class Stage:
    """An `avvp` subcommand: `arguments(parser)` declares its options, `main(args)` ("module:function") runs it."""
    command: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    main: str
    files: dict[str, str] = field(default_factory=dict)        # name -> path template over the stage's wildcards
    outputs: tuple[str, ...] = ()                                # the files Snakemake tracks (the rest it keeps)
    rebuildable: dict[str, tuple[str, ...]] = field(default_factory=dict)   # file -> the files remade with it
    gpu: bool = True                 # with --device cuda it claims a GPU slot first (avvp/training/slots.py)
    minutes: tuple[int, int] = (15, 60)   # a job's SLURM runtime: small data, real LLP (or the full preset)

    @property
    def rule(self) -> str:
        """Its Snakemake rule's name (and its logs' folder): 'noise-ratios' -> 'noise_ratios'."""
        return self.command.replace("-", "_")

    def output(self, name: str, results=None, **wildcards) -> str:
        """One of its files, the wildcards given filled in (the others left as templates), under `results` when
        given (the templates are the workflow's, under paths.RESULTS)."""
        path = self.files[name].format_map(_Keep(wildcards))
        return path if results is None else _rooted(path, {paths.RESULTS: str(results)})


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True, kw_only=True)
class Train(Stage):
    """Train one row with one seed: `avvp train`, every row's runs (rule `train`)."""


@dataclass(frozen=True, kw_only=True)
class RunPass(Stage):
    """A pass over one trained run: `avvp COMMAND --run RUN --data PACKED` plus, as declared, `--seed S`, one option
    per own wildcard (`--split S`), `--out` (the folder of its file `out`, or the file itself when `out_file`),
    `--<name> FILE` for each label-source file it reads, `--precision`, and the options `args(row, config)` gives.
    `target`: a Snakemake target running it over every run of the tables' rows it applies to (those whose label
    source has each of its `label_files`). `gating_files`: the workflow makes the per-run file of every gating the
    run is scored under first (evaluation: avvp/evaluation/gatings.py RunFile)."""
    wildcards: dict[str, str] = field(default_factory=dict)    # own wildcard -> its regular expression
    out: str | None = None
    out_file: bool = False
    seed: bool = False
    precision: bool = False
    label_files: tuple[str, ...] = ()
    args: Callable | None = None     # (row: avvp.variants.Variant, config: dict) -> extra options (str)
    target: str | None = None
    gating_files: bool = False       # it reads the per-run file of each gating the run is scored under


@dataclass(frozen=True, kw_only=True)
class SeedFile(Stage):
    """A per-seed file made from the run of `row` with that seed (or, `row` None, from the packed data alone):
    `avvp COMMAND [--run RUN] --data PACKED --seed S --out OUT` (OUT: its file `out`, or that file's folder unless
    `out_file`), `--precision` where declared, and the options `args(config)` gives."""
    row: str | None
    out: str
    out_file: bool = False
    precision: bool = True
    args: Callable | None = None     # (config: dict) -> extra options (str)
    quality: str | None = None       # its file of label quality (removals scored: avvp/evaluation/label_quality.py)


def rebuildable(results=paths.RESULTS, data=paths.DATA) -> list[tuple[str, tuple[str, ...]]]:
    """The files the workflow makes again when they are unreadable (truncated, damaged): glob patterns, each with
    the names of the files in its folder that go with it (the other outputs of the job that made it).

    The workflow removes an unreadable match and its companions when it starts (avvp.io.remove_unreadable);
    Snakemake then makes them again when anything needs them: a job with all its outputs gone is re-run by the
    next job that asks for one of them, while outputs made from the file before it was damaged stay valid.
    (Removing only a file no rule asks for, such as per_video.npz, would never re-run its job.)
    """
    roots = {str(paths.RESULTS): str(results), str(paths.DATA): str(data)}
    out = []
    for stage in STAGES.values():
        for name, companions in stage.rebuildable.items():
            pattern = _rooted(_glob(stage.files[name]), roots)
            out.append((pattern, tuple(_glob(stage.files[c]).rsplit("/", 1)[-1] for c in companions)))
    return out


def _glob(template: str) -> str:
    return template.format_map(_Star())


class _Star(dict):
    def __missing__(self, key: str) -> str:
        return "*"


def _rooted(pattern: str, roots: dict[str, str]) -> str:
    head, _, rest = pattern.partition("/")
    return f"{roots.get(head, head)}/{rest}"


def quality_stages(rows) -> list[str]:
    """The label stages of these rows (resolved Variants) that keep a file of their label quality
    (SeedFile.quality), each once, in the rows' order."""
    stages = [stage for row in rows for stage in LABEL_SOURCES.get(row.labels).files.values()]
    return [s for s in dict.fromkeys(stages) if getattr(STAGES.get(s), "quality", None)]


def quality_file(stage: str, seed, results=paths.RESULTS) -> Path:
    """A label stage's file of label quality for a seed, under `results`."""
    entry = STAGES.get(stage)
    return Path(entry.output(entry.quality, results, seed=seed))


def together(*names: str) -> dict[str, tuple[str, ...]]:
    """Files remade together: each with all the others as its companions."""
    return {name: tuple(other for other in names if other != name) for name in names}


# ------------------------------------------------------------------------------------- shared options

def compute_args(p: argparse.ArgumentParser, precision: bool = True) -> None:
    """Where and how a torch subcommand computes; cli.main applies --threads before the subcommand runs."""
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    if precision:
        p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")


def sheet_args(p: argparse.ArgumentParser, tables: bool = False) -> None:
    """The sheets a subcommand reads, each repeatable: the files are merged in order (a user's adds rows,
    recipes or tables to the paper's) and validated before anything runs."""
    p.add_argument("--variants-file", action="append",
                   help="a variants sheet (default config/variants.yaml); repeat to merge several")
    if tables:
        p.add_argument("--tables-file", "--tables", dest="tables", action="append",
                       help="a tables sheet (default config/tables.yaml); repeat to merge several")


def graphs_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--graphs", choices=["on", "off"],
                   help="each training step as a CUDA graph (avvp/training/graphs.py; the same function as off). "
                        "Default: on with --device cuda, off on CPU (on: the graph-shaped path without capture)")


def seed_pass_args(p: argparse.ArgumentParser, run: str, seed: str, out: str) -> None:
    """The options of a pass over a trained run that takes a seed (a per-seed stage's, a seeded diagnostic's):
    the run, the packed data (default: the one it was trained on), the seed, the output, where it computes."""
    p.add_argument("--run", required=True, help=run)
    p.add_argument("--data", help="packed dataset (default: the one the run was trained on)")
    p.add_argument("--seed", type=int, default=0, help=seed)
    p.add_argument("--out", required=True, help=out)
    compute_args(p)


def run_args(p: argparse.ArgumentParser, what: str = "run folder written by `avvp train`") -> None:
    """A pass over a trained run: the run, and the packed data (default: the one it was trained on)."""
    p.add_argument("--run", required=True, help=what)
    p.add_argument("--data", help="packed dataset (default: the one the run was trained on)")


# ---------------------------------------------------------------------------------------- the core's

def _synth(p):
    p.add_argument("--preset", choices=["tiny", "default", "full"], default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (official LLP layout)")


def _pack(p):
    p.add_argument("--data", required=True, help="LLP root folder (the five CSVs and feats/)")
    p.add_argument("--out", required=True, help="output folder for the packed arrays")
    p.add_argument("--train-csv", help="override the path of AVVP_train.csv")
    p.add_argument("--val-csv", help="override the path of AVVP_val_pd.csv")
    p.add_argument("--test-csv", help="override the path of AVVP_test_pd.csv")
    p.add_argument("--eval-audio-csv", help="override the path of AVVP_eval_audio.csv")
    p.add_argument("--eval-visual-csv", help="override the path of AVVP_eval_visual.csv")
    p.add_argument("--audio-dir", help="override feats/vggish")
    p.add_argument("--visual-dir", help="override feats/res152")
    p.add_argument("--motion-dir", help="override feats/r2plus1d_18")
    p.add_argument("--no-frames", action="store_true",
                   help="store only the per-second visual means (10x2048), not the 80 frames")


def _score(p):
    p.add_argument("--annotations", required=True, help="folder with the official CSVs")
    p.add_argument("--split", choices=["val", "test"], required=True)
    p.add_argument("--predictions", required=True, help=".npz with filenames, audio, visual (N x 25 x 10)")
    p.add_argument("--out", help="also write the JSON here")


def option_flag(option: str) -> str:
    """A label file's `avvp train` flag, without its dashes: 'pseudo_labels' -> 'pseudo-labels'."""
    return option.replace("_", "-")


def label_options() -> dict[str, str]:
    """Every file a label source trains on, by its `avvp train` option (`--refined`), with its help."""
    out: dict[str, str] = {}
    for name, source in LABEL_SOURCES.items():
        for option, stage_name in source.files.items():
            stage = STAGES.get(stage_name)
            file = stage.files[stage.out].rsplit("/", 1)[-1]
            out.setdefault(option, f"{file} from `avvp {stage.command}` (rows with `labels: {name}`)")
    return out


def _train(p):
    p.add_argument("--variant", required=True, help="a name from config/variants.yaml, e.g. 'HAN + CM-Co'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", required=True, help="packed dataset (avvp pack)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, run.json")
    for name, help_ in label_options().items():      # each label source's files, e.g. --refined
        p.add_argument(f"--{option_flag(name)}", dest=name, help=help_)
    p.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    p.add_argument("--protocol", default="default", choices=["default", "released"])
    p.add_argument("--lr-scale", type=float, default=1.0,
                   help="multiply the recipe's learning rate (short runs on small data; recorded in run.json)")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="also write each epoch's losses and validation numbers as TensorBoard scalars under "
                        "DIR/<row>/seed<S> (needs `pip install -e '.[tracking]'`; the run's results are unchanged)")
    sheet_args(p)
    compute_args(p)
    graphs_arg(p)


def _evaluate(p):
    run_args(p)
    p.add_argument("--split", choices=["val", "test"], required=True)
    p.add_argument("--out", help="output folder (default RUN/<split>)")
    compute_args(p, precision=False)  # evaluation runs in the precision the run was trained in


def _profile(p):
    p.add_argument("--variant", required=True)
    p.add_argument("--batch", type=int, default=64, help="videos in the profiled forward pass (paper: 64)")
    p.add_argument("--out", help="also write the JSON here")
    sheet_args(p)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="accepted like the other stages', but counting runs on CPU: the counts do not depend on "
                        "the device, and thop and the FLOP counter's added formulas are the CPU kernels'")


def _table(p):
    p.add_argument("--table", required=True, help="a table of the tables sheet, e.g. table2")
    p.add_argument("--results", default="results", help="results folder holding runs/ and profile/")
    p.add_argument("--config", default="config/config.yaml")
    sheet_args(p, tables=True)
    p.add_argument("--seeds", type=int, nargs="+", help="seeds to aggregate (default: from config)")
    p.add_argument("--data", help="packed dataset whose manifest describes the data (for the header)")
    p.add_argument("--out", required=True, help="output .md (a .csv is written beside it)")
    p.add_argument("--curves", metavar="PNG", help="also draw the rows' training curves (log.csv) into this .png")
    p.add_argument("--html", metavar="HTML", help="also write the table as one HTML page (with the curves, when "
                                                  "--curves is given): what the Snakemake report shows")


def _runs(p):
    p.add_argument("--results", default="results", help="results folder holding runs/")
    p.add_argument("--out", default="results/runs.csv", help="output .csv (a .parquet beside it with pyarrow)")


def _figure(p):
    p.add_argument("--kind", required=True, help="a figure kind: timeline, tsne, spread, or a plugin's "
                                                 "(avvp/reporting/figures.py)")
    p.add_argument("--results", default="results")
    sheet_args(p, tables=True)
    p.add_argument("--methods", nargs="+", help="the rows to show (default: the kind's own; avvp/reporting/figures.py)")
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--out", required=True, help="output .png")


def _diagnose(p):
    p.add_argument("--results", default="results", help="results folder holding runs/ (and the label stages' files)")
    sheet_args(p, tables=True)
    p.add_argument("--table", default=DIAGNOSED_TABLE,
                   help="whose rows to diagnose (each compared with its `base` row)")
    p.add_argument("--methods", nargs="+", help="only these rows of the table")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to average over (test split)")
    p.add_argument("--data", help="packed dataset whose test weak labels define the leak (default: the first run's "
                                  "run.json `data`; without one, the classes present in the annotations)")
    p.add_argument("--no-label-quality", "--no-refine", dest="no_label_quality", action="store_true",
                   help="skip the label quality of the rows' label stages (MA's refinement: its per-seed summary)")
    p.add_argument("--out", default="results/diagnostics", help="output folder for the CSVs and PNGs")


RUN = paths.run_folder("{slug}", "{seed}")
PACKED = paths.packed_folder("{packed}")
DIAGNOSED_TABLE = "table2"   # whose rows the workflow (and `avvp diagnose` by default) diagnoses
# What `avvp diagnose` writes into its folder (docs/diagnostics.md), by what it holds; the workflow asks for all.
DIAGNOSTICS = {"per_class_f": "per_class_f.csv", "per_class_diff": "per_class_diff.png", "leak": "leak.csv",
               "leak_figure": "leak.png", "cooccurrence": "cooccurrence.csv",
               "cooccurrence_matrices": "cooccurrence_matrices.csv", "cooccurrence_figure": "cooccurrence.png",
               "label_quality": "refinement.csv", "label_quality_figure": "refinement.png"}

# synth's entry keeps its name `run`: avvp/data/synth.py's code is hashed into the pins (avvp/data/pins.py).
STAGES.register("synth", Stage(
    command="synth", help="write a synthetic LLP dataset in the official layout", arguments=_synth,
    main="avvp.data.synth:run", gpu=False))
STAGES.register("pack", Stage(
    command="pack", help="validate an LLP folder once and write contiguous arrays + manifest", arguments=_pack,
    main="avvp.data.pack:main", files={"manifest": str(paths.manifest_json(PACKED))}, outputs=("manifest",),
    rebuildable={"manifest": ()}, gpu=False))
STAGES.register("score", Stage(
    command="score", help="the ten LLP numbers of a prediction file", arguments=_score,
    main="avvp.evaluation.score:main", gpu=False))
STAGES.register("train", Train(
    command="train", help="train one variant with one seed", arguments=_train, main="avvp.training.train:main",
    # done.json is training's only output: Snakemake deletes a job's outputs before rerunning it, and a resumed
    # run needs its last.pt and best.pt. best.pt goes with done.json: a run whose best weights are gone restarts.
    files={"done": str(paths.done_json(RUN)), "best": str(paths.best_pt(RUN))}, outputs=("done",),
    rebuildable={"done": (), "best": ("done",)}, minutes=(120, 600)))
_SPLIT = {name: str(f(RUN, "{split}")) for name, f in (
    ("metrics", paths.metrics_json), ("predictions", paths.predictions_npz), ("per_video", paths.per_video_npz),
    ("by_gating", paths.by_gating_json))}
STAGES.register("evaluate", RunPass(
    command="evaluate", help="metrics.json and predictions.npz of a trained run", arguments=_evaluate,
    main="avvp.evaluation.evaluate:main", files=_SPLIT, outputs=tuple(_SPLIT), rebuildable=together(*_SPLIT),
    wildcards={"split": "val|test"}, out="metrics", gating_files=True))
STAGES.register("profile", Stage(
    command="profile", help="parameters and FLOPs, in the paper's convention and truly counted", arguments=_profile,
    main="avvp.reporting.profile:main", files={"profile": str(paths.profile_file("{slug}"))}, outputs=("profile",),
    rebuildable={"profile": ()}, gpu=False))
STAGES.register("table", Stage(
    command="table", help="assemble one of the tables of the tables sheet from evaluated runs", arguments=_table,
    main="avvp.reporting.tables:main", gpu=False))
STAGES.register("runs", Stage(
    command="runs", help="one tidy CSV of every run: a line per row, seed, split and gating", arguments=_runs,
    main="avvp.reporting.runs:main", gpu=False))
STAGES.register("figure", Stage(
    command="figure", help="the paper's figures from evaluated runs", arguments=_figure,
    main="avvp.reporting.figures:main", gpu=False))
STAGES.register("diagnose", Stage(
    command="diagnose", help="per-class F, modality leak, co-occurrence and label quality of a table's rows",
    arguments=_diagnose, main="avvp.reporting.diagnose:main", gpu=False,
    files={name: str(paths.diagnostics_dir() / file) for name, file in DIAGNOSTICS.items()},
    outputs=tuple(DIAGNOSTICS)))
