"""HAN's hybrid attention network (Tian et al., ECCV 2020; docs/protocol.md#han; the paper's Eqs. 1-2).

HAN's temporal model: hybrid attention layers (avvp/models/layers.py, one set of weights shared by both
modalities) over the 10 segments of a video.
"""

from __future__ import annotations

import torch
from torch import nn

from avvp.models.layers import HybridAttention, hybrid_pair


class HANBackbone(nn.Module):
    """1-3 hybrid attention layers over the 10 segments: (f_a, f_v) -> (x_a, x_v), (B, 10, 512) each.

    stacking='chained' feeds each layer the previous layer's output (the correct stacking, our default).
    stacking='released' reproduces the released HAN code, where every layer reads the ORIGINAL inputs, so
    only the last layer shapes the output (the others are still computed, as there, which is what Table 4's
    "HAN 2/3 Layers" FLOPs and parameters measure).

    `cross=False` (the spec's `cross_attention: off`, or one forward call's choice) skips the cross-modal
    attention: each layer computes LN1(q + drop(SelfAttn(q))) and its feed-forward block with the same weights
    (JoMoLD, docs/methods/jomold.md#jomold). The cross-attention weights are built either way, so a model with it off
    starts from the same weights as one with it on.
    """

    def __init__(self, d: int = 512, layers: int = 1, stacking: str = "chained", dropout: float = 0.1,
                 cross: bool = True):
        super().__init__()
        self.stacking = stacking
        self.cross = cross
        self.layers = nn.ModuleList(HybridAttention(d, d, dropout) for _ in range(layers))

    def forward(self, f_a: torch.Tensor, f_v: torch.Tensor, cross: bool | None = None):
        cross = self.cross if cross is None else cross
        x_a, x_v = f_a, f_v
        for layer in self.layers:
            if self.stacking == "released":
                x_a, x_v = hybrid_pair(layer, f_a, f_v, cross=cross)
            else:
                x_a, x_v = hybrid_pair(layer, x_a, x_v, cross=cross)
        return x_a, x_v


def build(spec: dict, d: int) -> HANBackbone:
    return HANBackbone(d, spec["layers"], spec["stacking"], float(spec["dropout"]),
                       cross=spec.get("cross_attention", "on") == "on")
