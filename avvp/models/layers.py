"""Layers several models share: a CPU-friendly dropout and the hybrid attention layer
(docs/protocol.md#han-layer, #cm-co).

One hybrid attention layer, with one set of weights shared by both modalities, updates each modality's
tokens by self-attention within the modality plus cross-modal attention to the other one, then a
feed-forward block (post-norm):

    q = LN1(q + drop(CrossAttn(q, other)) + drop(SelfAttn(q)))
    q = LN2(q + drop(W2 drop(relu(W1 q))))

HAN's backbone applies it over the 10 segments (the paper's Eqs. 1-2); CM-Co applies it at width d_c over
the 25 class tokens of a segment (Eq. 5). So it is written for any width and any token axis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Dropout(nn.Dropout):
    """nn.Dropout whose CPU mask is drawn as `uniform >= p` (the same Bernoulli(1 - p) distribution).

    On CPU, bernoulli_ is slower than a uniform draw, and dropout masks are much of CM-Co's non-matmul time
    over its 25 x 10 x 2 class tokens per video. Other devices keep the fused kernel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        return x * ((torch.rand_like(x) >= self.p) * (1.0 / (1.0 - self.p)))


class HybridAttention(nn.Module):
    """One hybrid attention layer over (N, L, d) token sets: 1 head, feed-forward `d_ff`, post-norm.

    Attention uses nn.MultiheadAttention (batch_first). Its dropout on the attention weights follows
    PyTorch's transformer layers. Layer norms are modules (thop counts them as zero operations in
    `avvp profile`, as the paper's convention does); softmax and relu are functional, so thop never
    sees them.
    """

    def __init__(self, d: int, d_ff: int, dropout: float, cross: bool = True):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, 1, dropout=dropout, batch_first=True)
        # Built only when used: a module that exists but is never called would still count as weights.
        self.cross_attn = nn.MultiheadAttention(d, 1, dropout=dropout, batch_first=True) if cross else None
        self.linear1 = nn.Linear(d, d_ff)
        self.linear2 = nn.Linear(d_ff, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.drop = Dropout(dropout)

    def forward(self, q: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        """q: (N, L, d) queries; other: (N, L', d) tokens of the other modality (None: self-attention only)."""
        y = q + self.drop(self.self_attn(q, q, q, need_weights=False)[0])
        if other is not None:
            y = y + self.drop(self.cross_attn(q, other, other, need_weights=False)[0])
        y = self.norm1(y)
        return self.norm2(y + self.drop(self.linear2(self.drop(F.relu(self.linear1(y))))))


def hybrid_pair(layer: HybridAttention, a: torch.Tensor, v: torch.Tensor, cross: bool = True):
    """Apply one shared layer to both modalities in a single batched call (Eq. 2 / Eq. 5).

    Audio and visual are stacked along the batch axis, so each attention and linear runs once on 2N
    token sets; the cross-attention keys are the same stack with the halves swapped (audio queries see
    visual tokens and vice versa).
    """
    x = torch.cat([a, v], dim=0)
    other = torch.cat([v, a], dim=0) if cross else None
    return layer(x, other).chunk(2, dim=0)      # chunk: its backward is one cat, not zero-filled slices
