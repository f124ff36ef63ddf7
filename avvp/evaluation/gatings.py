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


# CMPAE's decision rule (docs/protocol.md#cmpae-gating): its validation during training uses 0.45 for every class.
CMPAE_AUDIO, CMPAE_VISUAL, CMPAE_SEGMENT = 0.45, 0.45, 0.25


@GATINGS.register("cmpae", description="CMPAE's gates: audio 0.45, visual per class (tuned), segments 0.25",
                  params=("thresholds",))
def cmpae(probs: dict, thresholds=None):
    """CMPAE: audio of class c on iff `a_prob[c] >= 0.45`, visual iff `v_prob[c] >= tau_c`, a segment iff its
    frame_prob >= 0.25 and its modality's gate. `thresholds`: tau (25,) from the run's thresholds file
    (avvp/evaluation/thresholds.py), or None for 0.45 everywhere. The model's eval forward already fused its
    two passes (avvp/models/cmpae.py), so the probabilities here are the fused ones."""
    import numpy as np

    from avvp.evaluation.metrics import gated, video_gate

    tau = CMPAE_VISUAL if thresholds is None else np.asarray(thresholds, dtype=np.float32)
    return gated(probs["frame_prob"], video_gate(probs, "a_prob", CMPAE_AUDIO), video_gate(probs, "v_prob", tau),
                 CMPAE_SEGMENT)


def binarize(probs: dict, gating: str = "han", **params):
    """Binary (audio, visual) predictions of `probs` under the registered `gating`."""
    return GATINGS.get(gating)(probs, **params)
