"""VALOR's pseudo-label loss (docs/methods/valor.md#valor-loss), an extra loss beside the video-level BCE.

Per modality, binary cross-entropy with logits of the frame logits against the per-second pseudo-labels, a mean
over B x 10 x 25: `weight x (BCEwithLogits(logit_a, PL_a) + BCEwithLogits(logit_v, PL_v))`. The pseudo-labels are
the row's label source's per-second labels (Batch.y_a, y_v: (B, 10, 25)); they add to the video-level term, whose
target stays the raw weak labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from avvp.errors import AvvpError
from avvp.training.losses import Batch, ExtraLoss


def pseudo_label_loss(frame_logit: torch.Tensor, pl_a: torch.Tensor, pl_v: torch.Tensor) -> torch.Tensor:
    """BCEwithLogits(frame_logit[..., 0, :], pl_a) + BCEwithLogits(frame_logit[..., 1, :], pl_v), each a mean over
    videos x seconds x classes, in float32 (frame_logit (B, T, 2, C); pl_a, pl_v (B, T, C) in {0, 1})."""
    logit = frame_logit.float()
    with torch.autocast(logit.device.type, enabled=False):
        return (F.binary_cross_entropy_with_logits(logit[:, :, 0], pl_a.float())
                + F.binary_cross_entropy_with_logits(logit[:, :, 1], pl_v.float()))


def _term(out: dict, first: dict, batch: Batch, cfg: dict) -> torch.Tensor:
    if "frame_logit" not in first:
        raise AvvpError("loss 'valor_pl' needs the frame logits of head 'valor'; this row's head has none")
    if batch.y_a.dim() != 3:
        raise AvvpError("loss 'valor_pl' needs per-second labels (labels: valor); this row's are video-level")
    return cfg["weight"] * pseudo_label_loss(first["frame_logit"], batch.y_a, batch.y_v)


VALOR_PL = ExtraLoss(term=_term)
