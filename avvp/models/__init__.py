"""Every model of the paper as one composition: input projections -> temporal backbone -> head -> MMIL.

`build(spec)` takes the `model` switches of a config/variants.yaml entry plus the recipe's `dropout`:
    backbone  han | ave | avsdn        layers    1-3 (han)      stacking  chained | released (han)
    head      mmil | cmco              cmco_mode cm | av | a_only | v_only          dropout   float (0.1)
and returns a module whose forward(audio (B,10,128), visual (B,10|80,2048), motion (B,10,512)) gives the
dict of ARCHITECTURE.md "Model interface".
"""

from __future__ import annotations

import torch
from torch import nn

from avvp.errors import AvvpError
from avvp.models.ave import AVEBackbone
from avvp.models.avsdn import AVSDNBackbone
from avvp.models.cmco import MODES as CMCO_MODES, CMCo
from avvp.models.han import HANBackbone
from avvp.models.inputs import D_MODEL, InputProjection
from avvp.models.mmil import FrameHead, MMILPooling

DEFAULTS = {"backbone": "han", "layers": 1, "stacking": "chained", "head": "mmil", "cmco_mode": "cm",
            "dropout": 0.1}
CHOICES = {"backbone": ("han", "ave", "avsdn"), "stacking": ("chained", "released"), "head": ("mmil", "cmco"),
           "cmco_mode": CMCO_MODES}


class Parser(nn.Module):
    """A weakly-supervised audio-visual video parser (HAN's layout, Fig. 1 of the paper)."""

    def __init__(self, backbone: nn.Module, frame_head: nn.Module, d: int = D_MODEL):
        super().__init__()
        self.inputs = InputProjection(d=d)
        self.backbone = backbone
        self.frame_head = frame_head         # FrameHead (HAN) or CMCo: segment probabilities
        self.mmil = MMILPooling(d)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, motion: torch.Tensor) -> dict:
        f_a, f_v = self.inputs(audio, visual, motion)
        x_a, x_v = self.backbone(f_a, f_v)
        x = torch.stack([x_a, x_v], dim=2)                        # (B, T, 2, d)
        if isinstance(self.frame_head, CMCo):
            frame_prob = self.frame_head(x_a, x_v)
        else:
            frame_prob = self.frame_head(x)
        out = self.mmil(x, frame_prob)
        out.update(frame_prob=frame_prob, x_a=x_a, x_v=x_v, v_in=f_v)
        return out


def normalise(spec: dict) -> dict:
    """The spec with defaults filled in; an AvvpError names any unknown key or value."""
    unknown = set(spec) - set(DEFAULTS)
    if unknown:
        raise AvvpError(f"model spec: unknown switch(es) {sorted(unknown)} (known: {sorted(DEFAULTS)})")
    s = {**DEFAULTS, **spec}
    for key, allowed in CHOICES.items():
        if s[key] not in allowed:
            raise AvvpError(f"model spec: {key}={s[key]!r} is not one of {list(allowed)}")
    if not isinstance(s["layers"], int) or not 1 <= s["layers"] <= 3:
        raise AvvpError(f"model spec: layers={s['layers']!r} must be 1, 2 or 3")
    if s["backbone"] != "han" and (s["layers"] != 1 or s["stacking"] != "chained"):
        raise AvvpError(f"model spec: layers/stacking apply to the han backbone only, not {s['backbone']}")
    if not 0.0 <= float(s["dropout"]) < 1.0:
        raise AvvpError(f"model spec: dropout={s['dropout']!r} must be in [0, 1)")
    return s


def build(spec: dict) -> Parser:
    s = normalise(spec)
    dropout = float(s["dropout"])
    if s["backbone"] == "han":
        backbone = HANBackbone(D_MODEL, s["layers"], s["stacking"], dropout)
    elif s["backbone"] == "ave":
        backbone = AVEBackbone(D_MODEL, dropout=dropout)
    else:
        backbone = AVSDNBackbone(D_MODEL, dropout=dropout)
    head = CMCo(s["cmco_mode"], D_MODEL) if s["head"] == "cmco" else FrameHead(D_MODEL)
    return Parser(backbone, head)


__all__ = ["build", "normalise", "Parser"]
