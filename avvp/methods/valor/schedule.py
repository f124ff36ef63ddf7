"""VALOR's learning-rate schedule (docs/methods/valor.md#valor-recipe): a linear warm-up, then a cosine decay.

As released (60 epochs, warm-up 10): before each epoch e = 1..E the rate is (e / W) x peak while e < W, then
min + (peak - min) (1 + cos(pi (e - W) / (E - W))) / 2, the peak at epoch W and `min_lr` at epoch E. A run shorter
than the recipe's epochs scales the warm-up with it, W = max(1, round(warmup_epochs x E / recipe epochs)) (our
choice: as released, a short run would never reach the peak); E = W (where the release divides by zero) keeps the
peak.
"""

from __future__ import annotations

import math


def rate(epoch: int, epochs: int, warmup: int, peak: float, low: float) -> float:
    """The rate of 1-based `epoch` of `epochs`."""
    if epoch < warmup:
        return epoch / warmup * peak
    if epochs == warmup:
        return peak
    return low + (peak - low) * (1 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup))) / 2


def warmup_epochs(settings: dict, epochs: int, recipe_epochs: int) -> int:
    if epochs >= recipe_epochs:
        return settings["warmup_epochs"]
    return max(1, round(settings["warmup_epochs"] * epochs / recipe_epochs))


def warmup_cosine(optim, recipe: dict, epochs: int):
    """A LambdaLR whose factor of 0-based epoch k is rate(k + 1) / peak (fit steps it after each epoch)."""
    import torch

    settings, peak = recipe["warmup_cosine"], recipe["lr"]
    warmup = warmup_epochs(settings, epochs, recipe["epochs"])
    return torch.optim.lr_scheduler.LambdaLR(
        optim, lambda k: rate(k + 1, epochs, warmup, peak, settings["min_lr"]) / peak)
