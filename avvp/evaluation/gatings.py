"""Gatings: how a model's probabilities become binary predictions (config/variants.yaml `gating`).

A registry (avvp.registry): an entry maps the model's outputs over a split, `probs` (`frame_prob` (N, 10, 2, 25),
`global_prob`, `a_prob`, `v_prob` (N, 25)), to binary audio and visual predictions (N, 25, 10) uint8, opening
each modality's segments through a video-level gate. Keyword parameters are the gating's own (none today; a
gating with per-class thresholds would take them from a per-run file). `avvp evaluate` scores every registered
gating, so a table can compare two rows under one.
"""

from __future__ import annotations

from avvp import schema
from avvp.registry import Registry

GATINGS = Registry("gating")
schema.known(GATINGS)


@GATINGS.register("han", description="HAN's video-level gate")
def han(probs: dict):
    """HAN (also the paper's code): a class can be on in either modality only if `global_prob >= 0.5`."""
    # metrics (numpy) is imported when a gating runs, not when the sheets list the gatings.
    from avvp.evaluation.metrics import gated, video_gate

    gate = video_gate(probs, "global_prob")
    return gated(probs["frame_prob"], gate, gate)


@GATINGS.register("ma", description="MA's per-modality gates (audio by a_prob, visual by v_prob)")
def ma(probs: dict):
    """MA's own code: audio is gated by `a_prob >= 0.5`, visual by `v_prob >= 0.5`."""
    from avvp.evaluation.metrics import gated, video_gate

    return gated(probs["frame_prob"], video_gate(probs, "a_prob"), video_gate(probs, "v_prob"))


def binarize(probs: dict, gating: str = "han", **params):
    """Binary (audio, visual) predictions of `probs` under the registered `gating`."""
    return GATINGS.get(gating)(probs, **params)
