"""The seed paper: Exploring Cross-Video and Cross-Modality Signals (Lin, Tseng, Lee, Lin, Yang, NeurIPS 2021;
docs/methods/cvcms.md). CM-Co, its cross-modality co-occurrence frame head (Table 3's ablations as its mode), and
CM-S, its cross-video shared semantics (an extra loss with its batch augmentation); its recipe `ours` is in
config/variants.yaml. Registrations only: nothing here imports torch.
"""

from __future__ import annotations

from avvp.registry import EXTRA_LOSSES, FRAME_HEADS
from avvp.training import POSITIVE, settings

FRAME_HEADS.register("cmco", "avvp.methods.cvcms.cmco:build", switches={
    "cmco_mode": {"enum": ["cm", "av", "a_only", "v_only"], "default": "cm",
                  "description": "Table 3's ablations (our reading of the paper)"}})
EXTRA_LOSSES.register("cms", "avvp.methods.cvcms.losses:CMS", settings=settings(weight=POSITIVE, tau=POSITIVE))
