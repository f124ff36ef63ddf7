"""MA's temporal contrastive term (Wu & Yang, CVPR 2021; docs/methods/ma.md#ma-contrast), an extra loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from avvp.training.losses import Batch, ExtraLoss


def ma_contrast(x_a: torch.Tensor, v_in: torch.Tensor, temperature: float = 0.2,
                smoothing: float = 0.1) -> torch.Tensor:
    """MA's temporal contrastive term (Wu & Yang, CVPR 2021; not an equation of this paper;
    docs/methods/ma.md#ma-contrast).

    Within each video, audio segment t after the temporal layer (x_a, (B, T, d)) is scored against every
    fused visual segment s before it (v_in, (B, T, d)) by cosine similarity / temperature; a soft-target
    cross-entropy over the T segments, averaged over videos and segments.

    The soft target smooths as MA's code does: 1 - smoothing on s = t and smoothing / (T - 1) on each other
    segment (0.9 and 0.1/9 for T = 10). PyTorch's `label_smoothing` would spread the mass over all T segments
    (0.91 and 0.01), so the target is built explicitly.
    """
    t = x_a.shape[1]
    x_a, v_in = x_a.float(), v_in.float()
    logits = torch.bmm(F.normalize(x_a, dim=-1), F.normalize(v_in, dim=-1).transpose(1, 2)) / temperature
    eye = torch.eye(t, device=x_a.device)
    soft = eye * (1 - smoothing) + (1 - eye) * (smoothing / (t - 1))
    return -(soft * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def _ma_contrast_term(out: dict, first: dict, batch: Batch, cfg: dict) -> torch.Tensor:
    return cfg["weight"] * ma_contrast(first["x_a"], first["v_in"], cfg["temperature"], cfg["smoothing"])


MA_CONTRAST = ExtraLoss(term=_ma_contrast_term)
