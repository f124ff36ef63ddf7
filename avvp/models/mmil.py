"""HAN's frame head and attentive MMIL pooling (docs/protocol.md#han-heads; the paper's Eq. 3).

On x = stack(audio, visual) of shape (B, T, 2, d):
    frame_prob = sigmoid(Linear(d -> C)(x))                 segment-level probabilities p_t
    frame_att  = softmax over time of Linear(d -> C)(x)     temporal attention w_t^a, w_t^v
    av_att     = softmax over the 2 modalities of Linear(d -> C)(x)   modality attention w_t^av
    global = sum_t sum_m frame_att * frame_prob * av_att,  a_prob / v_prob = sum_t frame_att * frame_prob.
"""

from __future__ import annotations

import torch
from torch import nn

from avvp.constants import NUM_CLASSES


def probability(logit: torch.Tensor) -> torch.Tensor:
    """sigmoid(logit) in float32, also under bf16 autocast (which leaves sigmoid in bf16): in bf16 every
    probability above 1 - 2^-9 (a logit above ~6.2) is exactly 1.0, which the clamped BCE then cannot move, so
    a confidently wrong prediction would stop learning. A no-op on float32 logits."""
    return torch.sigmoid(logit.float())


class FrameHead(nn.Module):
    """HAN's segment-level classifier, one Linear(d -> C) shared by both modalities.

    forward(x_a, x_v[, x]) (B, T, d) each -> frame_prob (B, T, 2, C), the interface of every frame head; x, when
    given, is their stack (B, T, 2, d) already made by the parser. `classify` applies the classifier to one
    modality (CM-Co's single-modality ablations keep it for the other one).
    """

    def __init__(self, d: int = 512, n_classes: int = NUM_CLASSES):
        super().__init__()
        self.fc_prob = nn.Linear(d, n_classes)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """sigmoid(Linear(d -> C)) on any (..., d) tensor, the sigmoid in float32 (`probability`)."""
        return probability(self.fc_prob(x))

    def forward(self, x_a: torch.Tensor, x_v: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(torch.stack([x_a, x_v], dim=2) if x is None else x)


class MMILPooling(nn.Module):
    """Attentive MMIL pooling of segment probabilities into video-level ones (Eq. 3)."""

    def __init__(self, d: int = 512, n_classes: int = NUM_CLASSES):
        super().__init__()
        self.fc_frame_att = nn.Linear(d, n_classes)
        self.fc_av_att = nn.Linear(d, n_classes)

    def forward(self, x: torch.Tensor, frame_prob: torch.Tensor) -> dict:
        """x: (B, T, 2, d) features; frame_prob: (B, T, 2, C). Returns the pooled probabilities."""
        frame_att_logit = self.fc_frame_att(x)
        # Softmaxes in float32 too (CPU autocast keeps them in bf16): weights that sum to 1 + 2^-8 would pool a
        # confident probability above 1, where the clamped BCE has no gradient. No-ops in float32.
        frame_att = torch.softmax(frame_att_logit.float(), dim=1)
        av_att = torch.softmax(self.fc_av_att(x).float(), dim=2)
        temporal = (frame_att * frame_prob).sum(dim=1)           # (B, 2, C)
        global_prob = (frame_att * frame_prob * av_att).sum(dim=(1, 2))
        return {"global_prob": global_prob, "a_prob": temporal[:, 0], "v_prob": temporal[:, 1],
                "frame_att_logit": frame_att_logit}


def build(spec: dict, d: int) -> FrameHead:
    return FrameHead(d)
