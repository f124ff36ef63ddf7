"""VALOR's parser (Lai, Chen, Wang, NeurIPS 2023; docs/methods/valor.md#valor-model): HAN with its widths from
switches and its layers stacked in sequence, the frame logits exposed to the pseudo-label loss.

    inputs      HAN's projections at width d (audio, 8-frame mean of the projected frames, motion, fusion)
    encoder     `layers` hybrid attention layers (multi-head, feed-forward `ff`, dropout 0.1, post-norm), CHAINED;
                inside a layer the streams are updated in sequence (`stacking: sequential`, as released): audio
                first, a' = L(a, v), then visual from the UPDATED audio, v' = L(v, a'); `parallel` is HAN's
                layer, both from the layer's inputs
    heads       HAN's: frame logits Linear(d -> 25) (their sigmoid, in float32, the frame probabilities) and
                MMIL's attentive pooling
Outputs: the model interface's, plus `frame_logit` (B, 10, 2, 25), what VALOR's pseudo-label loss reads.
"""

from __future__ import annotations

import torch
from torch import nn

from avvp.errors import AvvpError
from avvp.models.inputs import InputProjection
from avvp.models.layers import Dropout, HybridAttention, hybrid_pair
from avvp.models.mmil import MMILPooling, probability

N_CLASSES = 25


class MultiHeadHybrid(HybridAttention):
    """HAN's hybrid attention layer with `heads` attention heads and a feed-forward of `ff` (HAN's: 1 and d)."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        nn.Module.__init__(self)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d, ff)
        self.linear2 = nn.Linear(ff, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.drop = Dropout(dropout)


class ValorEncoder(nn.Module):
    """Chained layers; within each, the streams in sequence (released) or in parallel (HAN's layer)."""

    def __init__(self, d: int, heads: int, ff: int, layers: int, stacking: str, dropout: float):
        super().__init__()
        self.stacking = stacking
        self.layers = nn.ModuleList(MultiHeadHybrid(d, heads, ff, dropout) for _ in range(layers))

    def forward(self, a: torch.Tensor, v: torch.Tensor):
        for layer in self.layers:
            if self.stacking == "sequential":
                a = layer(a, v)
                v = layer(v, a)
            else:
                a, v = hybrid_pair(layer, a, v)
        return a, v


class ValorParser(nn.Module):
    def __init__(self, spec: dict):
        super().__init__()
        d = int(spec["width"])
        self.encoder = ValorEncoder(d, int(spec["heads"]), int(spec["ff"]), int(spec["layers"]), spec["stacking"],
                                    float(spec["dropout"]))
        self.fc_prob = nn.Linear(d, N_CLASSES)
        self.mmil = MMILPooling(d)
        self.inputs = InputProjection(d=d)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, motion: torch.Tensor, cross: bool | None = None):
        if cross is not None:
            raise AvvpError("backbone 'valor' has no cross-attention switch")
        f_a, f_v = self.inputs(audio, visual, motion)
        x_a, x_v = self.encoder(f_a, f_v)
        x = torch.stack([x_a, x_v], dim=2)                     # (B, T, 2, d)
        frame_logit = self.fc_prob(x)
        frame_prob = probability(frame_logit)
        out = self.mmil(x, frame_prob)
        out.update(frame_prob=frame_prob, frame_logit=frame_logit, x_a=x_a, x_v=x_v, v_in=f_v)
        return out


def build(spec: dict, d: int):
    raise AvvpError("head 'valor' is built with its parser (build_parser), with backbone 'valor'")


def build_backbone(spec: dict, d: int):
    raise AvvpError("backbone 'valor' goes with head 'valor' (the parser exposing the frame logits)")


def build_parser(spec: dict) -> ValorParser:
    """VALOR's parser of a normalised spec (backbone and head both `valor`)."""
    if spec["backbone"] != "valor":
        raise AvvpError(f"model spec: head 'valor' needs backbone 'valor' (got '{spec['backbone']}')")
    return ValorParser(spec)
