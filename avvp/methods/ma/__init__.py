"""MA (Wu & Yang, CVPR 2021): modality-aware label refinement (docs/methods/ma.md).

Step 1 is a row (STEP1_ROW of config/variants.yaml: HAN with MA's temporal contrast, trained like any row);
step 2, `avvp refine`, turns its run into refined audio and visual labels per seed (a per-seed stage), which the
label source `refined` trains on (MA, MA* and every row built on them). Also MA's temporal contrast (an extra
loss) and MA's per-modality gating. Registrations only: nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path

from avvp import paths
from avvp.evaluation.gatings import Gating
from avvp.registry import EXTRA_LOSSES, GATINGS, LABEL_SOURCES, STAGES
from avvp.stages import SeedFile, seed_pass_args, together
from avvp.training import POSITIVE, settings
from avvp.training.label_sources import LabelSource

STEP1_ROW = "MA step 1"


def refine_folder(seed, results=paths.RESULTS) -> Path:
    """`avvp refine`'s --out of a seed in the workflow: refined_labels.npz, summary.json."""
    return paths.seed_folder("refine", seed, results)


def labels_file(out) -> Path:
    """The refined labels in an `avvp refine --out` folder: filenames, audio, visual (N, 25) uint8."""
    return Path(out) / "refined_labels.npz"


def summary_file(out) -> Path:
    """The refinement's summary in an `avvp refine --out` folder: removals, and their label quality."""
    return Path(out) / "summary.json"


EXTRA_LOSSES.register("ma_contrast", "avvp.methods.ma.losses:MA_CONTRAST", settings=settings(
    weight=POSITIVE, temperature=POSITIVE, smoothing={"type": "number", "minimum": 0, "exclusiveMaximum": 1}))
GATINGS.register("ma", Gating("avvp.methods.ma.gating:ma",
                              "MA's per-modality gates (audio by a_prob, visual by v_prob)"))
LABEL_SOURCES.register("refined", LabelSource(
    load="avvp.methods.ma.refine:refined", files={"refined": "refine"},
    description="MA's modality-aware labels: the weak labels less step 2's removals"))


def _refine(p):
    seed_pass_args(p, run=f"the trained step-1 run (`avvp train --variant '{STEP1_ROW}'`)",
                   seed="seed of step 2's partners (the row's seed)",
                   out="output folder: refined_labels.npz, summary.json")


STAGES.register("refine", SeedFile(
    command="refine", help="MA label refinement (step 2) of a trained step-1 run: refined audio/visual train labels",
    arguments=_refine, main="avvp.methods.ma.refine:main", row=STEP1_ROW,
    files={"labels": str(labels_file(refine_folder("{seed}"))), "summary": str(summary_file(refine_folder("{seed}")))},
    outputs=("labels", "summary"), rebuildable=together("labels", "summary"), out="labels", quality="summary",
    minutes=(60, 240)))
