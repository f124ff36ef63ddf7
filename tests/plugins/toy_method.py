"""A method from outside the package, as a researcher would write one (tests/test_workflow.py plugs it in).

A toy temporal backbone: each segment mixed with its video's mean (`mix` of it), then one linear layer and a
ReLU per modality. One module, one registration: the switch it reads is declared with its default and range,
so the variants sheet validates a row that uses it like any of the paper's.
"""

from __future__ import annotations

import torch
from torch import nn

from avvp.registry import BACKBONES


class ToyBackbone(nn.Module):
    """(f_a, f_v) (B, T, d) -> (x_a, x_v) (B, T, d)."""

    def __init__(self, d: int, mix: float):
        super().__init__()
        self.mix = mix
        self.audio = nn.Linear(d, d)
        self.visual = nn.Linear(d, d)

    def _context(self, x: torch.Tensor) -> torch.Tensor:
        return (1 - self.mix) * x + self.mix * x.mean(dim=1, keepdim=True)

    def forward(self, f_a: torch.Tensor, f_v: torch.Tensor):
        return torch.relu(self.audio(self._context(f_a))), torch.relu(self.visual(self._context(f_v)))


def build(spec: dict, d: int) -> ToyBackbone:
    return ToyBackbone(d, float(spec["mix"]))


BACKBONES.register("toy", build, switches={
    "mix": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
            "description": "how much of the video's mean each segment takes in"}})
