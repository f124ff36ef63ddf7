"""The `avvp` command line: one subcommand per stage of the workflow.

Each subcommand is a registered stage (avvp/stages.py: the core's; avvp/methods/<paper>/: a method's; a plugin's
from outside): its arguments are the contract the Snakemake rules use, and its work is done by its `main(args)`,
imported only when the subcommand runs so that `avvp --help` stays fast. An `AvvpError` becomes one line on
stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from avvp import plugins
from avvp.errors import AvvpError
from avvp.registry import STAGES, resolve


def parser() -> tuple[argparse.ArgumentParser, dict]:
    """The parser of every registered stage's subcommand (avvp/stages.py; a method's and a plugin's too), and
    subcommand -> its stage."""
    ap = argparse.ArgumentParser(prog="avvp", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    stages = {}
    for stage in STAGES.values():
        stage.arguments(sub.add_parser(stage.command, help=stage.help))
        stages[stage.command] = stage
    return ap, stages


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
    ap, stages = parser()
    args = ap.parse_args(argv)
    try:
        check_sheets(args)
        # Pick this job's GPU before anything initialises CUDA (a stage that computes on CPU, profile, needs none);
        # then the runs' determinism for every CUDA subcommand, as training has it (a pass over the selected
        # weights must pick the same kernels: cuDNN's could otherwise differ and flip a segment at a threshold).
        if getattr(args, "device", None) == "cuda" and stages[args.command].gpu:
            importlib.import_module("avvp.training.slots").claim()
            importlib.import_module("avvp.training.graphs").deterministic(True)
        if getattr(args, "threads", None):  # torch's thread pool is sized once, before the subcommand's work
            importlib.import_module("torch").set_num_threads(args.threads)
        resolve(stages[args.command].main)(args)
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
