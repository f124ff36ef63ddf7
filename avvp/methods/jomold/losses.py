"""JoMoLD's temporal contrast (docs/methods/jomold.md#jomold-model), an extra loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from avvp.training.losses import Batch, ExtraLoss


def jomold_contrast(x_a: torch.Tensor, x_v: torch.Tensor, temperature: float = 0.2,
                    smoothing: float = 0.1) -> torch.Tensor:
    """JoMoLD's temporal contrast (docs/methods/jomold.md#jomold): post-HAN audio against post-HAN visual segments.

    Per video s(t, u) = cos(x_a(t), x_v(u)) / temperature, p_t = softmax_u s(t, .), q_t = 1 - smoothing on
    u = t and smoothing / (T - 1) elsewhere, and the loss is -mean over (video, t) of log(sum_u q_t(u) p_t(u)):
    the log of an expected probability (an NCE form), not MA's cross-entropy -sum_u q_t(u) log p_t(u).
    Computed as a logsumexp of log q + log p, so a tiny p never underflows to log 0.
    """
    t = x_a.shape[1]
    x_a, x_v = x_a.float(), x_v.float()
    logits = torch.bmm(F.normalize(x_a, dim=-1), F.normalize(x_v, dim=-1).transpose(1, 2)) / temperature
    eye = torch.eye(t, device=x_a.device)
    soft = eye * (1 - smoothing) + (1 - eye) * (smoothing / (t - 1))
    return -torch.logsumexp(torch.log(soft) + torch.log_softmax(logits, dim=-1), dim=-1).mean()


def _jomold_contrast_term(out: dict, first: dict, batch: Batch, cfg: dict) -> torch.Tensor:
    # x_v is the backbone's output, before the visual dropout that feeds the heads (docs/methods/jomold.md#jomold).
    return cfg["weight"] * jomold_contrast(first["x_a"], first["x_v"], cfg["temperature"], cfg["smoothing"])


JOMOLD_CONTRAST = ExtraLoss(term=_jomold_contrast_term)
