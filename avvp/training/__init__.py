"""Training: the loop (train), MA's refinement (refine), the losses, the CUDA-graphed step (graphs), GPU slots.

The extra loss terms a row may add beside the MMIL BCE (config/variants.yaml `losses`) are a registry by name,
`EXTRA_LOSSES`, declared here by import path (so the sheets list them without importing torch), in the order
their terms are added to the loss. Each entry declares its settings: the recipe key of the loss's name holds
them, and `start_epoch` (1-based, default 1) says from which epoch the term is in force.
"""

from __future__ import annotations

from avvp import schema
from avvp.registry import Registry

EXTRA_LOSSES = Registry("loss", "losses")
schema.known(EXTRA_LOSSES)

POSITIVE = {"type": "number", "exclusiveMinimum": 0}
START_EPOCH = {"type": "integer", "minimum": 1, "description": "the first epoch (1-based) of the term"}


def settings(**properties) -> dict:
    """The schema of a loss's recipe entry: these keys (all required) and an optional start_epoch."""
    return {"type": "object", "properties": {**properties, "start_epoch": START_EPOCH},
            "required": list(properties), "additionalProperties": False}


EXTRA_LOSSES.register("ma_contrast", "avvp.training.losses:MA_CONTRAST", settings=settings(
    weight=POSITIVE, temperature=POSITIVE, smoothing={"type": "number", "minimum": 0, "exclusiveMaximum": 1}))
EXTRA_LOSSES.register("cms", "avvp.training.losses:CMS", settings=settings(weight=POSITIVE, tau=POSITIVE))
EXTRA_LOSSES.register("jomold_contrast", "avvp.training.losses:JOMOLD_CONTRAST", settings=settings(
    weight={"type": "number", "minimum": 0}, temperature=POSITIVE,
    smoothing={"type": "number", "minimum": 0, "exclusiveMaximum": 1}))
EXTRA_LOSSES.register("jml", "avvp.training.losses:JML", settings=settings(
    weight=POSITIVE, **{"lambda": {"type": "number", "minimum": 0}},
    floor={"type": "number", "minimum": 0, "maximum": 1}))
