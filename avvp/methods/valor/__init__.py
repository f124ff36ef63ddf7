"""VALOR (Lai, Chen, Wang, NeurIPS 2023): segment-level pseudo-labels from modality-independent teachers
(docs/methods/valor.md).

Its parser (HAN at other widths, its layers stacked in sequence, the frame logits exposed: backbone and head
`valor`), its pseudo-label loss `valor_pl`, its warm-up + cosine schedule, and the label source `valor`: per-second
audio and visual labels from the file the stage `valor-labels` makes from the packed data (VALOR's released files on
real LLP, config `pseudo_labels`; on synthetic data the generator's truth, through the row's simulated teacher, the
label source's settings {miss, add, seed}). Registrations only: nothing here imports torch.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from avvp import paths
from avvp.registry import BACKBONES, EXTRA_LOSSES, FRAME_HEADS, LABEL_SOURCES, SCHEDULES, STAGES
from avvp.stages import SeedFile, compute_args, together
from avvp.training import POSITIVE, settings
from avvp.training.label_sources import LabelSource
from avvp.training.schedules import Schedule

# The synthetic teacher of the recipe `valor` and of `avvp valor-labels`'s quality summary: each true second of a
# weak-label class missed, each false one added, with probability 0.2 per modality (SPEC: about the released
# labels' quality on LLP test, 80 / 61-62 / 54-56 / 65-66 segment A / V / AV / Type on the default preset).
DEFAULT_TEACHER = {"miss": 0.2, "add": 0.2, "seed": 0}
PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}


def folder(seed, results=paths.RESULTS) -> Path:
    return paths.seed_folder("valor", seed, results)


def labels_file(out) -> Path:
    """The training split's pseudo-labels in an `avvp valor-labels --out` folder."""
    return Path(out) / "pseudo_labels.npz"


def summary_file(out) -> Path:
    """The teacher's quality on val and test (the ten numbers), in an `avvp valor-labels --out` folder."""
    return Path(out) / "summary.json"


BACKBONES.register("valor", "avvp.methods.valor.model:build_backbone", switches={
    "width": {"type": "integer", "minimum": 8, "maximum": 2048, "default": 512, "description": "the model's width d"},
    "heads": {"type": "integer", "minimum": 1, "maximum": 64, "default": 8, "description": "attention heads"},
    "ff": {"type": "integer", "minimum": 8, "maximum": 8192, "default": 1024, "description": "feed-forward width"},
    "layers": {"type": "integer", "minimum": 1, "maximum": 8, "default": 1, "description": "chained layers"},
    "stacking": {"enum": ["sequential", "parallel"], "default": "sequential",
                 "description": "sequential: audio updated first, visual from the updated audio (as released)"}})
FRAME_HEADS.register("valor", "avvp.methods.valor.model:build", parser="avvp.methods.valor.model:build_parser")
EXTRA_LOSSES.register("valor_pl", "avvp.methods.valor.losses:VALOR_PL", settings=settings(weight=POSITIVE))
SCHEDULES.register("warmup_cosine", Schedule(
    "avvp.methods.valor.schedule:warmup_cosine", "linear warm-up, then a cosine decay to min_lr (VALOR's)",
    settings={"type": "object", "additionalProperties": False, "required": ["warmup_epochs", "min_lr"],
              "properties": {"warmup_epochs": {"type": "integer", "minimum": 1}, "min_lr": {"type": "number",
                                                                                          "minimum": 0}}}))
LABEL_SOURCES.register("valor", LabelSource(
    load="avvp.methods.valor.pseudo_labels:load", files={"pseudo_labels": "valor-labels"}, per_second=True,
    description="VALOR's per-second pseudo-labels (released; or the synthetic truth through a simulated teacher)",
    settings={"type": "object", "additionalProperties": False, "required": ["miss", "add", "seed"],
              "properties": {"miss": PROBABILITY, "add": PROBABILITY, "seed": {"type": "integer", "minimum": 0}},
              "description": "the simulated teacher (synthetic data only): miss and add probabilities, its seed"}))


def _arguments(p) -> None:
    p.add_argument("--data", required=True, help="packed dataset (avvp pack)")
    p.add_argument("--seed", type=int, default=0, help="the seed whose file this is (the labels do not depend on it)")
    p.add_argument("--out", required=True, help="output folder: pseudo_labels.npz, summary.json")
    p.add_argument("--released", metavar="DIR", help="VALOR's released pseudo-labels (CLIP/ and CLAP/ folders; real "
                                                     "LLP); without it, the synthetic data's truth")
    compute_args(p, precision=False)


def _released(config: dict) -> str:
    return f"--released {shlex.quote(config['pseudo_labels'])}" if config.get("pseudo_labels") else ""


STAGES.register("valor-labels", SeedFile(
    command="valor-labels", help="VALOR's per-second pseudo-labels of the training split, and their teacher's quality",
    arguments=_arguments, main="avvp.methods.valor.pseudo_labels:main", row=None,
    files={"labels": str(labels_file(folder("{seed}"))), "summary": str(summary_file(folder("{seed}")))},
    outputs=("labels", "summary"), rebuildable=together("labels", "summary"), out="labels", precision=False,
    args=_released, gpu=False))
