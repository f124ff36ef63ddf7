"""MA's gating (docs/methods/ma.md#ma-gating): its own code gates each modality by its own video-level probability."""

from __future__ import annotations

from avvp.evaluation.metrics import gated, video_gate


def ma(probs: dict):
    """Audio is gated by `a_prob >= 0.5`, visual by `v_prob >= 0.5`."""
    return gated(probs["frame_prob"], video_gate(probs, "a_prob"), video_gate(probs, "v_prob"))
