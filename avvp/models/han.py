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
    """

    def __init__(self, d: int = 512, layers: int = 1, stacking: str = "chained", dropout: float = 0.1):
        super().__init__()
        self.stacking = stacking
        self.layers = nn.ModuleList(HybridAttention(d, d, dropout) for _ in range(layers))

    def forward(self, f_a: torch.Tensor, f_v: torch.Tensor):
        x_a, x_v = f_a, f_v
        for layer in self.layers:
            if self.stacking == "released":
                x_a, x_v = hybrid_pair(layer, f_a, f_v)
            else:
                x_a, x_v = hybrid_pair(layer, x_a, x_v)
        return x_a, x_v


def build(spec: dict, d: int) -> HANBackbone:
    return HANBackbone(d, spec["layers"], spec["stacking"], float(spec["dropout"]))
