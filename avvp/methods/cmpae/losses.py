"""CMPAE's joint-modal mutual learning (docs/methods/cmpae.md#cmpae-losses), an extra loss."""

from __future__ import annotations

import torch

from avvp.errors import AvvpError
from avvp.training.losses import Batch, ExtraLoss


def jml_loss(out: dict, y: torch.Tensor, odd: bool | torch.Tensor, lam: float = 1.0,
             floor: float = 0.9) -> torch.Tensor:
    """CMPAE's joint-modal mutual learning (docs/methods/cmpae.md#cmpae-losses), averaged over videos x classes.

    With U = max(U_g, floor) per video, p_max = max(p_a, p_v) and u_max the uncertainty of that modality (audio
    on a tie), p_mean and u_mean the modalities' means, and the raw weak labels y:
      odd steps, the global branch learns:   U (1-u_max) (p_g - sg(p_max))^2 y + lam U (1-u_mean) (p_g - sg(p_mean))^2 (1-y)
      even steps, the modalities learn:  (1-U) (1-u_max) (sg(p_g) - p_max)^2 y + lam (1-U) (1-u_mean) (...)^2 (1-y)
    Only the probabilities inside sg() are detached: U, u_max and u_mean keep their gradients, as released.
    `odd`: a bool, or a bool tensor (the trainer's step derives it from its device-side step count).
    """
    p_a, p_v, u_a, u_v, p_g = (out[k].float() for k in ("a_prob", "v_prob", "u_a", "u_v", "global_prob"))
    y = y.float()
    u = out["U_g"].float().clamp(min=floor).unsqueeze(1)            # max(U_g, floor): no gradient below it
    audio_wins = p_a >= p_v
    p_max, u_max = torch.where(audio_wins, p_a, p_v), torch.where(audio_wins, u_a, u_v)
    p_mean, u_mean = (p_a + p_v) / 2, (u_a + u_v) / 2

    def half(global_learns: bool) -> torch.Tensor:
        if global_learns:
            weight, g, p_top, p_avg = u, p_g, p_max.detach(), p_mean.detach()
        else:
            weight, g, p_top, p_avg = 1 - u, p_g.detach(), p_max, p_mean
        present = weight * (1 - u_max) * (g - p_top) ** 2 * y
        absent = lam * weight * (1 - u_mean) * (g - p_avg) ** 2 * (1 - y)
        return (present + absent).mean()
    if isinstance(odd, bool):
        return half(odd)
    # Inside a (CUDA-graphed) step the parity is a device tensor: a Python branch on it would freeze the captured
    # step's first parity. Both halves are computed and one kept; the other's gradient is exactly 0.
    return torch.where(odd, half(True), half(False))


def _jml_term(out: dict, first: dict, batch: Batch, cfg: dict) -> torch.Tensor:
    if "U_g" not in first:
        raise AvvpError("loss 'jml' needs the uncertainties of head 'cmpae' (u_a, u_v, U_g); this row's head has none")
    return cfg["weight"] * jml_loss(first, batch.y, batch.step % 2 == 1, cfg["lambda"], cfg["floor"])


JML = ExtraLoss(term=_jml_term, reads_step=True)
