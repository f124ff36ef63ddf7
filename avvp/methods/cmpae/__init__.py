"""CMPAE (Gao, Chen, Xu, CVPR 2023): cross-modal presence-absence evidence (docs/methods/cmpae.md).

Its frame head (with its own parser: it pools itself), its joint-modal mutual learning (an extra loss), its
gating with per-class visual thresholds tuned per run (the stage `thresholds`, a pass over the run: the gating's
per-run file), its release's selection rule, and the label source `cmpae_released` (JoMoLD's denoising with the
ratios CMPAE ships: a control). Registrations only: nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avvp import paths
from avvp.evaluation.gatings import Gating, RunFile
from avvp.methods.jomold import DENOISE
from avvp.registry import EXTRA_LOSSES, FRAME_HEADS, GATINGS, LABEL_SOURCES, SELECTION_RULES, STAGES
from avvp.stages import RunPass, compute_args
from avvp.training import POSITIVE, settings
from avvp.training.label_sources import LabelSource, weak
from avvp.training.selection import Rule


def thresholds_file(run) -> Path:
    """The run's tuned visual thresholds (`avvp thresholds`), read by `avvp evaluate` for the `cmpae` gating."""
    return Path(run) / "thresholds.json"


FRAME_HEADS.register("cmpae", "avvp.methods.cmpae.model:build", parser="avvp.methods.cmpae.model:build_parser",
                     switches={
    "input_act": {"enum": ["elu", "none"], "default": "elu", "description": "ELU after each input projection"},
    "ca_mix": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.8,
               "description": "z = ca_mix E_on + (1 - ca_mix) E_off when cross attention is on (1: E_on)"},
    "infer_fuse": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.7,
                   "description": "eval: p = f p_on + (1 - f) p_off (1: the cross-attention pass alone)"},
    "absence_dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.2,
                        "description": "dropout inside the absence evidence's cross-modal mix"}})
EXTRA_LOSSES.register("jml", "avvp.methods.cmpae.losses:JML", settings=settings(
    weight=POSITIVE, **{"lambda": {"type": "number", "minimum": 0}},
    floor={"type": "number", "minimum": 0, "maximum": 1}))
GATINGS.register("cmpae", Gating(
    "avvp.methods.cmpae.gating:cmpae", "CMPAE's gates: audio 0.45, visual per class (tuned), segments 0.25",
    params=RunFile(path=thresholds_file, read="avvp.methods.cmpae.thresholds:gating_params", stage="thresholds")))
# A control: JoMoLD's per-batch denoising with the ratios CMPAE ships, not those estimated on the data at hand
# (they describe real LLP; on other data the row measures that mismatch).
LABEL_SOURCES.register("cmpae_released", LabelSource(
    load=weak, per_batch=DENOISE, values="avvp.methods.cmpae.released:released_ratios",
    description="weak labels, denoised per batch with the noise ratios CMPAE ships (real LLP's)"))


@dataclass(frozen=True)
class MeanOfTen:
    """The mean of the ten LLP numbers (CMPAE's released selection); `str` names it for the log."""

    def __call__(self, scores: dict) -> float:
        return sum(scores[level][key] for level in scores for key in scores[level]) / 10

    def __str__(self) -> str:
        return "mean of ten"


# CMPAE's own selection: validation, the mean of all ten numbers, ties keep the later epoch.
SELECTION_RULES.register("val_avg_all", Rule(split="val", metric=MeanOfTen(), later_wins_tie=True))


def _thresholds(p):
    p.add_argument("--run", required=True, help="run folder written by `avvp train`")
    p.add_argument("--mode", default="tuned", choices=["tuned", "released", "fixed"],
                   help="tuned: search on validation; released: CMPAE's shipped values (real LLP only); fixed: 0.45")
    p.add_argument("--snapshot", default="selected", choices=["selected", "early"],
                   help="the weights it tunes on: the selected model (default) or early.pt (the recipe's snapshot "
                        "`early`: CMPAE's epoch 8, as released)")
    p.add_argument("--data", help="packed dataset (default: the one the run was trained on)")
    compute_args(p, precision=False)


def _threshold_options(row, config: dict) -> str:
    """The workflow's options: the config's mode; under the released protocol the recipe's early snapshot (as
    CMPAE's release tunes), else (and for a recipe without one) the selected model."""
    early = config["protocol"] == "released" and "early" in row.recipe.get("snapshots", {})
    return f"--mode {config['thresholds']} --snapshot {'early' if early else 'selected'}"


STAGES.register("thresholds", RunPass(
    command="thresholds", help="CMPAE's per-class visual thresholds of a trained run (RUN/thresholds.json)",
    arguments=_thresholds, main="avvp.methods.cmpae.thresholds:main",
    files={"thresholds": str(thresholds_file(paths.run_folder("{slug}", "{seed}")))}, outputs=("thresholds",),
    rebuildable={"thresholds": ()}, args=_threshold_options, minutes=(10, 30)))
