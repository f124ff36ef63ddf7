"""The parser every row builds: HAN's layout with the row's backbone and frame head (avvp/models/__init__.py)."""

from __future__ import annotations

import importlib

import torch
from torch import nn

from avvp.models.inputs import D_MODEL, InputProjection
from avvp.models.layers import Dropout
from avvp.models.mmil import MMILPooling
from avvp.registry import BACKBONES, FRAME_HEADS


class Parser(nn.Module):
    """A weakly-supervised audio-visual video parser (HAN's layout, Fig. 1 of the paper)."""

    def __init__(self, backbone: nn.Module, frame_head: nn.Module, d: int = D_MODEL, visual_dropout: float = 0.0):
        super().__init__()
        self.inputs = InputProjection(d=d)
        self.backbone = backbone
        self.frame_head = frame_head         # segment probabilities from (x_a, x_v)
        self.mmil = MMILPooling(d)
        # JoMoLD's dropout on the backbone's visual output, feeding every head (docs/methods/jomold.md#jomold).
        self.visual_drop = Dropout(visual_dropout) if visual_dropout > 0 else None

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, motion: torch.Tensor,
                cross: bool | None = None) -> dict:
        """`cross`: the backbone's cross-modal attention for this call (None: the spec's; False needs a
        backbone that takes it, HAN's)."""
        f_a, f_v = self.inputs(audio, visual, motion)
        x_a, x_v = self.backbone(f_a, f_v) if cross is None else self.backbone(f_a, f_v, cross=cross)
        h_v = x_v if self.visual_drop is None else self.visual_drop(x_v)
        x = torch.stack([x_a, h_v], dim=2)                        # (B, T, 2, d): MMIL's input
        # Heads get the stack too: HAN's classifier reads it rather than stacking again, so gradients reach
        # x_a and x_v summed in one fixed order (a second stack, or views, would change training's rounding).
        frame_prob = self.frame_head(x_a, h_v, x)
        out = self.mmil(x, frame_prob)
        out.update(frame_prob=frame_prob, x_a=x_a, x_v=x_v, v_in=f_v)     # x_v: before the visual dropout
        return out


def build_parser(spec: dict) -> Parser:
    """The parser of a normalised `spec`. Modules are built in a fixed order (inputs' weights are drawn inside
    Parser, after the backbone and head): parameter init consumes the global RNG, so the order fixes the weights.
    A head registered with a `parser` ("module:function") replaces the whole layout (CMPAE's head pools itself)."""
    own = FRAME_HEADS.meta(spec["head"]).get("parser")
    if own is not None:
        module, _, function = own.partition(":")
        return getattr(importlib.import_module(module), function)(spec)
    backbone = BACKBONES.get(spec["backbone"])(spec, D_MODEL)
    head = FRAME_HEADS.get(spec["head"])(spec, D_MODEL)
    return Parser(backbone, head, visual_dropout=float(spec.get("visual_dropout", 0.0)))
