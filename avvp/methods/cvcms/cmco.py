"""CM-Co: the paper's cross-modality co-occurrence module (Section 3.2, Eqs. 4-6; docs/methods/cvcms.md#cm-co).

It replaces HAN's segment classifier: each segment's feature becomes 25 class tokens per modality,
a_{t,c} = relu(f_t^a M_c^a + b_c^a) (Eq. 4: one Linear(512 -> 25*d_c) per modality, d_c = 128); one hybrid
attention layer at width d_c (1 head, feed-forward d_c, dropout 0.25), shared by the two modalities, relates
the classes of one segment: self-attention among a modality's 25 tokens plus cross attention to the other
modality's 25 tokens of the same segment (Eq. 5); p_{t,c} = sigmoid(Linear(d_c -> 1)) per modality (Eq. 6).
The MMIL attention still comes from the backbone's features (HAN's heads).

Modes (Table 3). The released code has CM-Co only; the ablations are OUR READING of the paper's text:
  cm      self + cross attention over class tokens in both modalities (the proposed module);
  av      class self-attention in both modalities, no cross attention;
  a_only  class self-attention for audio only; visual keeps HAN's segment classifier;
  v_only  the mirror: class self-attention for visual only; audio keeps HAN's classifier.

All segments of the batch are folded into the attention batch: tokens are (B*T, 25, d_c), and audio and
visual share one batched call, so there is no Python loop over videos, segments or classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avvp.constants import NUM_CLASSES
from avvp.models.layers import HybridAttention, hybrid_pair
from avvp.models.mmil import FrameHead, probability


class CMCo(nn.Module):
    """(x_a, x_v) (B, T, d) -> frame_prob (B, T, 2, C), modality 0 audio, 1 visual (a frame head)."""

    def __init__(self, mode: str = "cm", d: int = 512, d_c: int = 128, n_classes: int = NUM_CLASSES,
                 dropout: float = 0.25):
        super().__init__()
        self.mode, self.d_c, self.n_classes = mode, d_c, n_classes
        self.use_a = mode in ("cm", "av", "a_only")
        self.use_v = mode in ("cm", "av", "v_only")
        if self.use_a:
            self.tokens_a = nn.Linear(d, n_classes * d_c)       # M^a_c, b^a_c for every class c (Eq. 4)
            self.out_a = nn.Linear(d_c, 1)                      # MLP_a (Eq. 6)
        if self.use_v:
            self.tokens_v = nn.Linear(d, n_classes * d_c)
            self.out_v = nn.Linear(d_c, 1)
        self.layer = HybridAttention(d_c, d_c, dropout, cross=(mode == "cm"))
        # The single-modality ablations keep HAN's classifier for the other modality.
        self.frame_head = FrameHead(d, n_classes) if not (self.use_a and self.use_v) else None

    def _tokens(self, linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return F.relu(linear(x)).view(b * t, self.n_classes, self.d_c)

    def forward(self, x_a: torch.Tensor, x_v: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """frame_prob from the two modalities; `x`, their stack (the frame-head interface), is not needed."""
        b, t, _ = x_a.shape
        if self.use_a and self.use_v:
            tok_a, tok_v = hybrid_pair(self.layer, self._tokens(self.tokens_a, x_a),
                                       self._tokens(self.tokens_v, x_v), cross=(self.mode == "cm"))
            p_a = probability(self.out_a(tok_a)).view(b, t, self.n_classes)
            p_v = probability(self.out_v(tok_v)).view(b, t, self.n_classes)
        elif self.use_a:
            p_a = probability(self.out_a(self.layer(self._tokens(self.tokens_a, x_a)))).view(b, t, -1)
            p_v = self.frame_head.classify(x_v)
        else:
            p_a = self.frame_head.classify(x_a)
            p_v = probability(self.out_v(self.layer(self._tokens(self.tokens_v, x_v)))).view(b, t, -1)
        return torch.stack([p_a, p_v], dim=2)


def build(spec: dict, d: int) -> CMCo:
    return CMCo(spec["cmco_mode"], d)
