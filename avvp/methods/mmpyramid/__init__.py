"""MM-Pyramid (Yu, Cheng, Zhao, Feng, Zhang, ACM MM 2022): the multimodal pyramid attentional backbone
(docs/methods/mmpyramid.md), and its release's selection rule. Registrations only: nothing here imports torch.
"""

from __future__ import annotations

from avvp.registry import BACKBONES, SELECTION_RULES
from avvp.training.selection import Number, Rule

BACKBONES.register("mmpyr", "avvp.methods.mmpyramid.model:build", switches={
    "levels": {"type": "integer", "minimum": 1, "maximum": 4, "default": 4,
               "description": "pyramid levels; level i attends within +-2^i segments"},
    "stream_order": {"enum": ["released", "fixed"], "default": "released",
                     "description": "released: the head's audio index holds the visual-rooted stream, as released"},
    "init": {"enum": ["released", "independent"], "default": "released",
             "description": "released: the release's copied initial weights (equal projections and blocks)"}})
# Its release: validation segment Type@AV like `val`, compared with `>=`, so a tie keeps the later epoch; no early
# stop.
SELECTION_RULES.register("val_later", Rule(split="val", metric=Number("segment", "type_av"), later_wins_tie=True))
