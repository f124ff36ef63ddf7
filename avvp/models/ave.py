"""AVE baseline (Tian et al., ECCV 2018) adapted to parsing: OUR ADAPTATION (no public code of it;
docs/protocol.md#ave-and-avsdn).

AVE localises audio-visual events with audio-guided visual attention followed by recurrent (LSTM)
temporal modelling. The paper (following HAN) adds audio and visual parsing branches and the MMIL heads;
we build it on HAN's input projections and heads, so only the temporal model differs from HAN:

- Audio-guided visual attention. AVE attends over the spatial regions of each segment's feature map; the
  LLP features are spatially pooled, so OUR adaptation attends over the video's 10 fused visual segments
  instead, with AVE's additive form: for audio segment t, w_{t,s} = softmax_s(u^T tanh(W_v v_s + W_a a_t)),
  and the visual input of segment t becomes sum_s w_{t,s} v_s.
- Recurrent temporal modelling: one bidirectional LSTM per modality (256 units per direction, so the
  outputs x_a, x_v keep width 512 for the shared heads), with dropout on their inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from avvp.models.layers import Dropout
from avvp.models.precision import recurrent


class AVEBackbone(nn.Module):
    """(f_a, f_v) (B, T, 512) -> (x_a, x_v) (B, T, 512)."""

    def __init__(self, d: int = 512, d_att: int = 256, dropout: float = 0.1):
        super().__init__()
        self.att_v = nn.Linear(d, d_att, bias=False)
        self.att_a = nn.Linear(d, d_att, bias=False)
        self.att_u = nn.Linear(d_att, 1, bias=False)
        self.lstm_a = nn.LSTM(d, d // 2, batch_first=True, bidirectional=True)
        self.lstm_v = nn.LSTM(d, d // 2, batch_first=True, bidirectional=True)
        self.drop = Dropout(dropout)

    def audio_guided_attention(self, f_a: torch.Tensor, f_v: torch.Tensor) -> torch.Tensor:
        """Visual segments re-weighted by each audio segment: (B, T, d)."""
        h = torch.tanh(self.att_a(f_a).unsqueeze(2) + self.att_v(f_v).unsqueeze(1))   # (B, T_a, T_v, d_att)
        w = torch.softmax(self.att_u(h).squeeze(-1), dim=-1)                          # (B, T_a, T_v)
        return torch.bmm(w, f_v)

    def forward(self, f_a: torch.Tensor, f_v: torch.Tensor):
        v_att = self.audio_guided_attention(f_a, f_v)
        x_a = recurrent(self.lstm_a, self.drop(f_a))[0]
        x_v = recurrent(self.lstm_v, self.drop(v_att))[0]
        return x_a, x_v


def build(spec: dict, d: int) -> AVEBackbone:
    return AVEBackbone(d, dropout=float(spec["dropout"]))
