"""AVSDN baseline (Lin, Li & Wang, ICASSP 2019) adapted to parsing: OUR ADAPTATION (no public code;
docs/protocol.md#ave-and-avsdn).

AVSDN is a dual-modality sequence-to-sequence network for event localisation that integrates global
audio-visual context into local (per-segment) features. The paper adds audio and visual parsing branches
and the MMIL heads, as for AVE; we build it on HAN's input projections and heads:

- Encoder: an LSTM over the fused segments [f_a_t ; f_v_t] (1024 -> 512). Its final state summarises the
  whole video (the global audio-visual feature); its per-step outputs e_t carry the context up to t.
- Decoders: one LSTM per modality (the audio and visual parsing branches), initialised with the encoder's
  final state, reading [f_m_t ; e_t] (1024 -> 512): local features integrated with the global context.
  Their outputs are x_a and x_v (B, T, 512). Dropout on the decoder inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from avvp.models.layers import Dropout
from avvp.models.precision import recurrent


class AVSDNBackbone(nn.Module):
    """(f_a, f_v) (B, T, 512) -> (x_a, x_v) (B, T, 512)."""

    def __init__(self, d: int = 512, dropout: float = 0.1):
        super().__init__()
        self.encoder = nn.LSTM(2 * d, d, batch_first=True)
        self.decoder_a = nn.LSTM(2 * d, d, batch_first=True)
        self.decoder_v = nn.LSTM(2 * d, d, batch_first=True)
        self.drop = Dropout(dropout)

    def forward(self, f_a: torch.Tensor, f_v: torch.Tensor):
        e, state = recurrent(self.encoder, torch.cat([f_a, f_v], dim=-1))
        x_a = recurrent(self.decoder_a, self.drop(torch.cat([f_a, e], dim=-1)), state)[0]
        x_v = recurrent(self.decoder_v, self.drop(torch.cat([f_v, e], dim=-1)), state)[0]
        return x_a, x_v


def build(spec: dict, d: int) -> AVSDNBackbone:
    return AVSDNBackbone(d, dropout=float(spec["dropout"]))
