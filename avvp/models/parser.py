"""Every model of the paper as one composition: input projections -> temporal backbone -> frame head -> MMIL.

`build(spec)` takes a variant's model spec (avvp.variants: switches plus the recipe's `dropout`):
    backbone  han | ave | avsdn        layers    1-3 (han)      stacking  chained | released (han)
    head      mmil | cmco              cmco_mode cm | av | a_only | v_only          dropout   float (0.1)
and returns a module whose forward(audio (B,10,128), visual (B,10|80,2048), motion (B,10,512)) gives the
dict of ARCHITECTURE.md "Model interface".

Backbones and frame heads are registries by name (timm style): a new switch value is one entry here and its
own module. Every backbone maps (f_a, f_v) -> (x_a, x_v), (B, T, d) each; every frame head maps
(x_a, x_v[, x]) -> frame_prob (B, T, 2, C), where x, optional, is stack([x_a, x_v], dim=2) already made.
"""

from __future__ import annotations

import torch
from torch import nn

from avvp.errors import AvvpError
from avvp.models.ave import AVEBackbone
from avvp.models.avsdn import AVSDNBackbone
from avvp.models.cmco import MODES as CMCO_MODES
from avvp.models.cmco import CMCo
from avvp.models.han import STACKINGS, HANBackbone
from avvp.models.inputs import D_MODEL, InputProjection
from avvp.models.mmil import FrameHead, MMILPooling
from avvp.variants import normalise_model

# name -> builder(spec, d); spec is normalised, so every switch is present.
BACKBONES = {
    "han": lambda s, d: HANBackbone(d, s["layers"], s["stacking"], float(s["dropout"])),
    "ave": lambda s, d: AVEBackbone(d, dropout=float(s["dropout"])),
    "avsdn": lambda s, d: AVSDNBackbone(d, dropout=float(s["dropout"])),
}
FRAME_HEADS = {
    "mmil": lambda s, d: FrameHead(d),
    "cmco": lambda s, d: CMCo(s["cmco_mode"], d),
}
CHOICES = {"backbone": tuple(BACKBONES), "head": tuple(FRAME_HEADS), "stacking": STACKINGS, "cmco_mode": CMCO_MODES}


class Parser(nn.Module):
    """A weakly-supervised audio-visual video parser (HAN's layout, Fig. 1 of the paper)."""

    def __init__(self, backbone: nn.Module, frame_head: nn.Module, d: int = D_MODEL):
        super().__init__()
        self.inputs = InputProjection(d=d)
        self.backbone = backbone
        self.frame_head = frame_head         # segment probabilities from (x_a, x_v)
        self.mmil = MMILPooling(d)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, motion: torch.Tensor) -> dict:
        f_a, f_v = self.inputs(audio, visual, motion)
        x_a, x_v = self.backbone(f_a, f_v)
        x = torch.stack([x_a, x_v], dim=2)                        # (B, T, 2, d): MMIL's input
        # Heads get the stack too: HAN's classifier reads it rather than stacking again, so gradients reach
        # x_a and x_v summed in one fixed order (a second stack, or views, would change training's rounding).
        frame_prob = self.frame_head(x_a, x_v, x)
        out = self.mmil(x, frame_prob)
        out.update(frame_prob=frame_prob, x_a=x_a, x_v=x_v, v_in=f_v)
        return out


def normalise(spec: dict) -> dict:
    """The spec with defaults filled in; an AvvpError names any unknown switch or value."""
    s = normalise_model(spec)
    for key, allowed in CHOICES.items():
        if s[key] not in allowed:
            raise AvvpError(f"model spec: {key}={s[key]!r} is not one of {list(allowed)}")
    return s


def build(spec: dict) -> Parser:
    """The parser of `spec`. Modules are built in a fixed order (inputs' weights are drawn inside Parser,
    after the backbone and head): parameter init consumes the global RNG, so the order fixes the weights."""
    s = normalise(spec)
    backbone = BACKBONES[s["backbone"]](s, D_MODEL)
    head = FRAME_HEADS[s["head"]](s, D_MODEL)
    return Parser(backbone, head)


__all__ = ["BACKBONES", "FRAME_HEADS", "build", "normalise", "Parser"]
