"""Training: the loop (train), the losses, the CUDA-graphed step (graphs), label sources, selection, GPU slots.

The extra loss terms a row may add beside the MMIL BCE (config/variants.yaml `losses`) are entries of
avvp/registry.py's EXTRA_LOSSES, registered by their methods (avvp/methods/<paper>/) by import path, so the sheets
list them without importing torch; their terms are added in the order the row lists them. Each entry declares its
settings (`settings` below builds their schema): the recipe key of the loss's name holds them, and `start_epoch`
(1-based, default 1) says from which epoch the term is in force.
"""

from __future__ import annotations

POSITIVE = {"type": "number", "exclusiveMinimum": 0}
START_EPOCH = {"type": "integer", "minimum": 1, "description": "the first epoch (1-based) of the term"}


def settings(**properties) -> dict:
    """The schema of a loss's recipe entry: these keys (all required) and an optional start_epoch."""
    return {"type": "object", "properties": {**properties, "start_epoch": START_EPOCH},
            "required": list(properties), "additionalProperties": False}
