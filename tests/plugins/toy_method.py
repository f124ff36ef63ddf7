"""A method from outside the package, as a researcher would write one (tests/test_workflow.py plugs it in): a
folder of its own with its components and a stage, registered into avvp's registries, with no edit of avvp/ or
workflow/ (docs/adding-a-method.md walks through it).

- A toy temporal backbone: each segment mixed with its video's mean (`mix` of it), then one linear layer and a
  ReLU per modality.
- A teacher's labels: the stage `toy-teacher` (a per-seed file, avvp/stages.py SeedFile) reads the trained run of
  the row "Toy teacher" and keeps, per modality, the weak labels the teacher's video-level probability of that
  modality reaches `--threshold` for; the label source `toy_teacher` trains on that file.
- A per-batch rule `toy_anneal`: each batch's audio and visual targets move from the weak labels to the
  teacher's over the recipe's `toy_anneal.epochs` epochs (w = t / (epochs x iterations), capped at 1), inside the
  training step (the schedule of w is the rule's; the step reads its row).

Only the backbone's module is torch at import; everything else imports torch when it runs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avvp import paths
from avvp.registry import BACKBONES, LABEL_SOURCES, STAGES
from avvp.stages import SeedFile, compute_args
from avvp.training.label_sources import LabelSource, PerBatchRule

TEACHER_ROW = "Toy teacher"
TEACHER_FILE = "teacher_labels.npz"


# --- the backbone -------------------------------------------------------------------------------------------
class ToyBackbone(nn.Module):
    """(f_a, f_v) (B, T, d) -> (x_a, x_v) (B, T, d)."""

    def __init__(self, d: int, mix: float):
        super().__init__()
        self.mix = mix
        self.audio = nn.Linear(d, d)
        self.visual = nn.Linear(d, d)

    def _context(self, x: torch.Tensor) -> torch.Tensor:
        return (1 - self.mix) * x + self.mix * x.mean(dim=1, keepdim=True)

    def forward(self, f_a: torch.Tensor, f_v: torch.Tensor):
        return torch.relu(self.audio(self._context(f_a))), torch.relu(self.visual(self._context(f_v)))


def build(spec: dict, d: int) -> ToyBackbone:
    return ToyBackbone(d, float(spec["mix"]))


BACKBONES.register("toy", build, switches={
    "mix": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
            "description": "how much of the video's mean each segment takes in"}})


# --- the stage: the teacher's labels of a seed --------------------------------------------------------------
def teacher_folder(seed, results=paths.RESULTS) -> Path:
    return paths.seed_folder("toy_teacher", seed, results)


def _arguments(p) -> None:
    p.add_argument("--run", required=True, help=f"the teacher's run (`avvp train --variant '{TEACHER_ROW}'`)")
    p.add_argument("--data", help="packed dataset (default: the one the run was trained on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help=f"output folder: {TEACHER_FILE}")
    p.add_argument("--threshold", type=float, default=0.5, help="the probability a kept label reaches")
    compute_args(p)


def make_teacher_labels(args) -> None:
    import numpy as np

    from avvp.data import dataset
    from avvp.evaluation.evaluate import load_trained, predict
    from avvp.io import write_npz

    info, model = load_trained(Path(args.run), args.device)
    train = dataset.load_split(args.data or info["data"], "train")
    probs = predict(model, train, args.device, args.precision)
    weak = train.labels.numpy() > 0
    audio = weak & (probs["a_prob"] >= args.threshold)
    visual = weak & (probs["v_prob"] >= args.threshold)
    write_npz(Path(args.out) / TEACHER_FILE, filenames=np.array(train.filenames), audio=audio.astype(np.uint8),
              visual=visual.astype(np.uint8))
    print(f"teacher kept {audio.sum()} audio and {visual.sum()} visual of {weak.sum()} weak labels")


STAGES.register("toy-teacher", SeedFile(
    command="toy-teacher", help="the toy teacher's labels of a seed (a plugin's stage)", arguments=_arguments,
    main=make_teacher_labels, row=TEACHER_ROW, files={"labels": str(teacher_folder("{seed}") / TEACHER_FILE)},
    outputs=("labels",), rebuildable={"labels": ()}, out="labels"))


# --- the label source and its per-batch rule ----------------------------------------------------------------
def load_teacher(train, files: dict):
    """The teacher's audio and visual labels, checked against the training split's videos."""
    import numpy as np

    from avvp.errors import AvvpError
    from avvp.io import read_npz

    z = read_npz(files["teacher"], ("filenames", "audio", "visual"), "teacher labels",
                 "make them with avvp toy-teacher")
    if list(map(str, z["filenames"])) != train.filenames:
        raise AvvpError(f"{files['teacher']}: teacher labels of other training videos than the packed dataset's")
    return (torch.from_numpy(z["audio"].astype(np.float32)), torch.from_numpy(z["visual"].astype(np.float32)))


def full_weight(files: dict) -> torch.Tensor:
    """What the rule acts with: the teacher's final weight, 1."""
    return torch.ones(1, dtype=torch.float64)


def anneal_schedule(weight: torch.Tensor, settings: dict, iterations: int, epoch: int) -> torch.Tensor:
    """(iterations, 1): the teacher's weight at each batch of 0-based `epoch`, t / (epochs x iterations) capped."""
    t = torch.arange(iterations, dtype=torch.float64) + epoch * iterations
    return (weight * (t / (settings["epochs"] * iterations)).clamp(max=1.0)).unsqueeze(1)


def anneal(model, job, batch, epoch: int):
    """The batch's targets: w x the teacher's labels + (1 - w) x the weak labels (inside the step: tensors only)."""
    import dataclasses

    w = batch.in_force[0]
    return dataclasses.replace(batch, y_a=w * batch.y_a + (1 - w) * batch.y, y_v=w * batch.y_v + (1 - w) * batch.y)


TOY_ANNEAL = PerBatchRule(
    key="toy_anneal", settings={"type": "object", "additionalProperties": False, "required": ["epochs"],
                                "properties": {"epochs": {"type": "number", "exclusiveMinimum": 0}}},
    schedule=anneal_schedule, apply=anneal)
LABEL_SOURCES.register("toy_teacher", LabelSource(
    load=load_teacher, files={"teacher": "toy-teacher"}, per_batch=TOY_ANNEAL, values=full_weight,
    description="a toy teacher's labels, annealed in from the weak labels"))
