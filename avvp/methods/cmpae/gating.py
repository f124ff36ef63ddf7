"""CMPAE's decision rule (docs/methods/cmpae.md#cmpae-gating): its validation during training uses 0.45 for every
class; its test gating per-class visual thresholds tuned on validation (avvp/methods/cmpae/thresholds.py)."""

from __future__ import annotations

import numpy as np

from avvp.evaluation.metrics import gated, video_gate

CMPAE_AUDIO, CMPAE_VISUAL, CMPAE_SEGMENT = 0.45, 0.45, 0.25


def cmpae(probs: dict, thresholds=None):
    """Audio of class c on iff `a_prob[c] >= 0.45`, visual iff `v_prob[c] >= tau_c`, a segment iff its
    frame_prob >= 0.25 and its modality's gate. `thresholds`: tau (25,) from the run's thresholds file, or None
    for 0.45 everywhere. The model's eval forward already fused its two passes (avvp/methods/cmpae/model.py), so
    the probabilities here are the fused ones."""
    tau = CMPAE_VISUAL if thresholds is None else np.asarray(thresholds, dtype=np.float32)
    return gated(probs["frame_prob"], video_gate(probs, "a_prob", CMPAE_AUDIO), video_gate(probs, "v_prob", tau),
                 CMPAE_SEGMENT)
