"""Learning-rate schedules: how a recipe's rate moves from epoch to epoch (the recipe's `schedule`, default `step`).

A registry (avvp/registry.py SCHEDULES) of `Schedule`s: `make(optim, recipe, epochs)` returns a torch LR scheduler
that `fit` steps once after each epoch, so epoch k (0-based) trains with the rate it sets before it; `settings` is
the schema of the recipe key of the schedule's name (None: the schedule reads top-level recipe keys). HAN's StepLR
is registered here; a method's own in its folder. A scheduler writes a tensor learning rate in place, so a CUDA
graph captured in one epoch reads each later epoch's rate (avvp/training/graphs.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from avvp.registry import SCHEDULES


@dataclass(frozen=True)
class Schedule:
    make: Callable | str             # (optim, recipe, epochs) -> an LR scheduler; or "module:function"
    description: str
    settings: dict | None = None     # the schema of the recipe key of its name


def step_lr(optim, recipe: dict, epochs: int):
    """HAN's StepLR: the rate times `gamma` every `step_size` epochs (recipe keys of their own)."""
    import torch

    return torch.optim.lr_scheduler.StepLR(optim, step_size=recipe["step_size"], gamma=recipe["gamma"])


SCHEDULES.register("step", Schedule(step_lr, "StepLR(step_size, gamma), per epoch (HAN's)"))
