"""The `avvp` command line: one subcommand per stage of the workflow.

Each subcommand's arguments are defined here (this file is the contract the Snakemake rules use);
its work is done by `run(args)` in the named module, imported only when the subcommand runs so that
`avvp --help` stays fast. An `AvvpError` becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from avvp import paths, plugins
from avvp.errors import AvvpError
from avvp.training import labels


def _synth(sub):
    p = sub.add_parser("synth", help="write a synthetic LLP dataset in the official layout")
    p.add_argument("--preset", choices=["tiny", "default", "full"], default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (official LLP layout)")
    return "avvp.data.synth"


def _pack(sub):
    p = sub.add_parser("pack", help="validate an LLP folder once and write contiguous arrays + manifest")
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
    return "avvp.data.pack"


def _score(sub):
    p = sub.add_parser("score", help="the ten LLP numbers of a prediction file")
    p.add_argument("--annotations", required=True, help="folder with the official CSVs")
    p.add_argument("--split", choices=["val", "test"], required=True)
    p.add_argument("--predictions", required=True, help=".npz with filenames, audio, visual (N x 25 x 10)")
    p.add_argument("--out", help="also write the JSON here")
    return "avvp.evaluation.score"


def _compute_args(p, precision: bool = True) -> None:
    """Where and how a torch subcommand computes; cli.main applies --threads before the subcommand runs."""
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    if precision:
        p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")


def _sheet_args(p, tables: bool = False) -> None:
    """The sheets a subcommand reads, each repeatable: the files are merged in order (a user's adds rows,
    recipes or tables to the paper's) and validated before anything runs."""
    p.add_argument("--variants-file", action="append",
                   help="a variants sheet (default config/variants.yaml); repeat to merge several")
    if tables:
        p.add_argument("--tables-file", "--tables", dest="tables", action="append",
                       help="a tables sheet (default config/tables.yaml); repeat to merge several")


def _graphs_arg(p) -> None:
    p.add_argument("--graphs", choices=["on", "off"],
                   help="each training step as a CUDA graph (avvp/training/graphs.py; the same function as off). "
                        "Default: on with --device cuda, off on CPU (on: the graph-shaped path without capture)")


def _refine(sub):
    p = sub.add_parser("refine", help="MA label refinement (steps 1-2): refined audio/visual train labels")
    p.add_argument("--data", required=True, help="packed dataset (avvp pack)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder: refined_labels.npz, summary.json, step1/")
    p.add_argument("--epochs", type=int, help="step-1 epochs (default: the row 'MA step 1''s, 12 as MA)")
    _sheet_args(p)
    _compute_args(p)
    _graphs_arg(p)
    return "avvp.training.refine"


def _train(sub):
    p = sub.add_parser("train", help="train one variant with one seed")
    p.add_argument("--variant", required=True, help="a name from config/variants.yaml, e.g. 'HAN + CM-Co'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", required=True, help="packed dataset (avvp pack)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, run.json")
    for name, file in labels.files().items():      # each label source's files, e.g. --refined
        p.add_argument(f"--{name}", help=file.help)
    p.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    p.add_argument("--protocol", default="default", choices=["default", "released"])
    p.add_argument("--lr-scale", type=float, default=1.0,
                   help="multiply the recipe's learning rate (short runs on small data; recorded in run.json)")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="also write each epoch's losses and validation numbers as TensorBoard scalars under "
                        "DIR/<row>/seed<S> (needs `pip install -e '.[tracking]'`; the run's results are unchanged)")
    _sheet_args(p)
    _compute_args(p)
    _graphs_arg(p)
    return "avvp.training.train"


def _noise_ratios(sub):
    p = sub.add_parser("noise-ratios", help="JoMoLD's stage 2: per-class noise ratios of a trained noise estimator")
    p.add_argument("--run", required=True, help=f"the estimator's run folder (`avvp train --variant "
                                                f"'{paths.ESTIMATOR_ROW}'`)")
    p.add_argument("--data", required=True, help="packed dataset (avvp pack)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pass's batch order (the row's seed)")
    p.add_argument("--out", required=True, help="the ratios file to write (noise_ratios.json)")
    _compute_args(p)
    return "avvp.training.noise_ratios"


def _denoise_quality(sub):
    p = sub.add_parser("denoise-quality", help="JoMoLD's removals scored as MA's refinement (truth, annotations)")
    p.add_argument("--run", required=True, help="a trained `labels: jomold` run folder")
    p.add_argument("--ratios", required=True, help="its noise_ratios.json")
    p.add_argument("--data", required=True, help="packed dataset (avvp pack)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pass's batch order and dropout masks")
    p.add_argument("--out", required=True, help="the JSON file to write")
    _compute_args(p)
    return "avvp.training.denoise_quality"


def _evaluate(sub):
    p = sub.add_parser("evaluate", help="metrics.json and predictions.npz of a trained run")
    p.add_argument("--run", required=True, help="run folder written by `avvp train`")
    p.add_argument("--split", choices=["val", "test"], required=True)
    p.add_argument("--data", help="packed dataset (default: the one the run was trained on)")
    p.add_argument("--out", help="output folder (default RUN/<split>)")
    _compute_args(p, precision=False)  # evaluation runs in the precision the run was trained in
    return "avvp.evaluation.evaluate"


def _thresholds(sub):
    p = sub.add_parser("thresholds", help="CMPAE's per-class visual thresholds of a trained run (RUN/thresholds.json)")
    p.add_argument("--run", required=True, help="run folder written by `avvp train`")
    p.add_argument("--mode", default="tuned", choices=["tuned", "released", "fixed"],
                   help="tuned: search on validation; released: CMPAE's shipped values (real LLP only); fixed: 0.45")
    p.add_argument("--snapshot", default="selected", choices=["selected", "early"],
                   help="the weights it tunes on: the selected model (default) or early.pt (CMPAE's epoch-8 "
                        "snapshot, as released)")
    p.add_argument("--data", help="packed dataset (default: the one the run was trained on)")
    _compute_args(p, precision=False)
    return "avvp.evaluation.thresholds"


def _profile(sub):
    p = sub.add_parser("profile", help="parameters and FLOPs, in the paper's convention and truly counted")
    p.add_argument("--variant", required=True)
    p.add_argument("--batch", type=int, default=64, help="videos in the profiled forward pass (paper: 64)")
    p.add_argument("--out", help="also write the JSON here")
    _sheet_args(p)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="accepted like the other stages', but counting runs on CPU: the counts do not depend on "
                        "the device, and thop and the FLOP counter's added formulas are the CPU kernels'")
    return "avvp.reporting.profile"


def _table(sub):
    p = sub.add_parser("table", help="assemble one of the paper's tables from evaluated runs")
    p.add_argument("--table", required=True, help="a table of the tables sheet, e.g. table2")
    p.add_argument("--results", default="results", help="results folder holding runs/ and profile/")
    p.add_argument("--config", default="config/config.yaml")
    _sheet_args(p, tables=True)
    p.add_argument("--seeds", type=int, nargs="+", help="seeds to aggregate (default: from config)")
    p.add_argument("--data", help="packed dataset whose manifest describes the data (for the header)")
    p.add_argument("--out", required=True, help="output .md (a .csv is written beside it)")
    p.add_argument("--curves", metavar="PNG", help="also draw the rows' training curves (log.csv) into this .png")
    p.add_argument("--html", metavar="HTML", help="also write the table as one HTML page (with the curves, when "
                                                  "--curves is given): what the Snakemake report shows")
    return "avvp.reporting.tables"


def _runs(sub):
    p = sub.add_parser("runs", help="one tidy CSV of every run: a line per row, seed, split and gating")
    p.add_argument("--results", default="results", help="results folder holding runs/")
    p.add_argument("--out", default="results/runs.csv", help="output .csv (a .parquet beside it with pyarrow)")
    return "avvp.reporting.runs"


def _figure(sub):
    p = sub.add_parser("figure", help="the paper's figures from evaluated runs")
    p.add_argument("--kind", required=True, help="a figure kind: timeline, tsne, spread, or a plugin's "
                                                 "(avvp/reporting/figures.py FIGURES)")
    p.add_argument("--results", default="results")
    _sheet_args(p, tables=True)
    p.add_argument("--methods", nargs="+", help="the rows to show (default: the kind's own; avvp/reporting/figures.py)")
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--out", required=True, help="output .png")
    return "avvp.reporting.figures"


def _diagnose(sub):
    p = sub.add_parser("diagnose", help="per-class F, modality leak, co-occurrence and label quality of a table's rows")
    p.add_argument("--results", default="results", help="results folder holding runs/ and refine/")
    _sheet_args(p, tables=True)
    p.add_argument("--table", default=paths.DIAGNOSED_TABLE,
                   help="whose rows to diagnose (each compared with its `base` row)")
    p.add_argument("--methods", nargs="+", help="only these rows of the table")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to average over (test split)")
    p.add_argument("--data", help="packed dataset whose test weak labels define the leak (default: the first run's "
                                  "run.json `data`; without one, the classes present in the annotations)")
    p.add_argument("--no-refine", action="store_true",
                   help="skip the refinement's label quality (else read RESULTS/refine/seed<S>/summary.json)")
    p.add_argument("--out", default="results/diagnostics", help="output folder for the CSVs and PNGs")
    return "avvp.reporting.diagnose"


COMMANDS = [_synth, _pack, _score, _refine, _train, _noise_ratios, _denoise_quality, _evaluate, _thresholds, _profile,
            _table, _runs, _figure, _diagnose]


def parser() -> tuple[argparse.ArgumentParser, dict]:
    ap = argparse.ArgumentParser(prog="avvp", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    modules = {}
    for add in COMMANDS:
        name = add.__name__.lstrip("_").replace("_", "-")   # noise_ratios -> noise-ratios
        modules[name] = add(sub)
    return ap, modules


def check_sheets(args) -> None:
    """Load (and so validate) the sheets the subcommand reads, before it imports torch or touches a file."""
    from avvp import sheets

    if hasattr(args, "variants_file"):
        sheets.variants(args.variants_file)
    if hasattr(args, "tables"):
        sheets.tables(args.tables, args.variants_file)
def _error(command: str, e: Exception) -> int:
    """Print `e` as the one line of a failed subcommand, on a line of its own (after any progress bar the
    failure interrupted), and return the exit status 1."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()
    print(f"avvp {command}: error: {e}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    try:
        plugins.load(plugins.from_env())   # before the parser: plugins add choices (e.g. a label source's file)
    except AvvpError as e:
        print(f"avvp: error: {e}", file=sys.stderr)
        return 1
    ap, modules = parser()
    args = ap.parse_args(argv)
    try:
        check_sheets(args)
        # Pick this job's GPU before anything initialises CUDA (profile counts on CPU: it needs no GPU).
        if getattr(args, "device", None) == "cuda" and args.command != "profile":
            importlib.import_module("avvp.training.slots").claim()
        if getattr(args, "threads", None):  # torch's thread pool is sized once, before the subcommand's work
            importlib.import_module("torch").set_num_threads(args.threads)
        module = importlib.import_module(modules[args.command])
        module.run(args)
    except AvvpError as e:
        return _error(args.command, e)
    except OSError as e:  # a full disk met outside avvp.io's writers (which say what they were writing)
        err = importlib.import_module("avvp.io").space_error(e, e.filename or "a file", "output", None)
        if err is None:
            raise
        return _error(args.command, err)
    except KeyboardInterrupt:
        print(f"avvp {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
