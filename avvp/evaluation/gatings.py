"""Gatings: how a model's probabilities become binary predictions (config/variants.yaml `gating`).

A registry (avvp/registry.py GATINGS) of `Gating`s: each maps the model's outputs over a split, `probs`
(`frame_prob` (N, 10, 2, 25), `global_prob`, `a_prob`, `v_prob` (N, 25)), to binary audio and visual predictions
(N, 25, 10) uint8, opening each modality's segments through a video-level gate. A gating with parameters of its
own per run (per-class thresholds tuned on validation) declares them as a `RunFile`: the file in the run folder,
its reader, and the stage that makes it (a pass over the run); `avvp evaluate` reads it when it is there, and the
workflow asks for it for the runs scored under that gating. `avvp evaluate` scores every registered gating, so a
table can compare two rows under one. HAN's gating is registered here, a method's in its folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from avvp.registry import GATINGS, resolve


@dataclass(frozen=True)
class RunFile:
    """A gating's parameters of one run: `path(run)` the file, `read(run)` -> the keyword parameters of its
    binarize (the file must exist), made by the stage `stage`."""
    path: Callable[[Path], Path]
    read: Callable | str
    stage: str


@dataclass(frozen=True)
class Gating:
    binarize: Callable | str         # (probs, **params) -> (audio, visual) binary (N, 25, 10)
    description: str
    params: RunFile | None = None


def han(probs: dict):
    """HAN (also the paper's code): a class can be on in either modality only if `global_prob >= 0.5`."""
    # metrics (numpy) is imported when a gating runs, not when the sheets list the gatings.
    from avvp.evaluation.metrics import gated, video_gate

    gate = video_gate(probs, "global_prob")
    return gated(probs["frame_prob"], gate, gate)


GATINGS.register("han", Gating(han, "HAN's video-level gate"))


def binarize(probs: dict, gating: str = "han", **params):
    """Binary (audio, visual) predictions of `probs` under the registered `gating`."""
    return resolve(GATINGS.get(gating).binarize)(probs, **params)


def run_params(gating: str, run: Path) -> dict:
    """The keyword parameters of `gating` for a run: those of its per-run file when the gating has one and the
    file exists, else none (its defaults)."""
    params = GATINGS.get(gating).params
    if params is None or not params.path(Path(run)).exists():
        return {}
    return resolve(params.read)(Path(run))
