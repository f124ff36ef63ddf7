"""The training loss: HAN's MMIL BCE, the batch it is computed on, and the extra terms' interface.

Each loss function takes whatever tensors it is given and computes in float32 (also under bf16 autocast);
building targets (label smoothing, refined labels) is the trainer's job. The extra terms a row may add beside
the BCE are a registry by name, avvp/registry.py's EXTRA_LOSSES (config/variants.yaml `losses`), each an
`ExtraLoss` registered by its method (avvp/methods/<paper>/losses.py): it reads its settings from the recipe key
of its name, may augment the batch before the forward (a cross-video term pairing each video's audio with another
video's visual track), and is active from the recipe's `start_epoch` (1 when absent). Terms are added in the
order the row lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from avvp.registry import EXTRA_LOSSES

EPS = 1e-7


def _bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # In float32 and outside autocast: 1 - 1e-7 rounds to 1 in bf16, and CUDA autocast refuses this op.
    with torch.autocast(p.device.type, enabled=False):
        return F.binary_cross_entropy(p.float().clamp(EPS, 1 - EPS), y.float())


def mmil_bce(out: dict, target_audio: torch.Tensor, target_visual: torch.Tensor,
             target_global: torch.Tensor, weights: dict | None = None) -> torch.Tensor:
    """HAN's weakly-supervised loss (docs/protocol.md#han-recipe; the BCE on Eq. 3's pooled predictions, also Eq. 6's).

    BCE(a_prob, target_audio) + BCE(v_prob, target_visual) + BCE(global_prob, target_global), each the mean
    over videos and classes, with probabilities clamped to [1e-7, 1 - 1e-7]. Targets are (B, 25) floats.
    `weights` (the recipe's `loss_weights`: audio, visual, global; JoMoLD's 2/1/1) scale the three terms;
    without them the sum is unweighted (and computed exactly as before the option existed).
    """
    if weights is None:
        return (_bce(out["a_prob"], target_audio) + _bce(out["v_prob"], target_visual)
                + _bce(out["global_prob"], target_global))
    return (weights["audio"] * _bce(out["a_prob"], target_audio) + weights["visual"] * _bce(out["v_prob"], target_visual)
            + weights["global"] * _bce(out["global_prob"], target_global))


@dataclass(frozen=True)
class Batch:
    """One training batch. Rows [0, n) are real videos, n = len(y); an augmentation may append rows (CM-S's
    mixed pairs) that carry audio and visual labels only, so the weak labels `y` cover the real videos."""
    audio: torch.Tensor
    visual: torch.Tensor
    motion: torch.Tensor
    y: torch.Tensor          # weak video-level labels (n, C)
    y_a: torch.Tensor        # audio label source (weak or refined), one row per batch row
    y_v: torch.Tensor        # visual label source
    # What the label source's per-batch rule acts with at this batch (its schedule's row; None without a rule).
    in_force: torch.Tensor | None = None
    # The batch's index within its epoch, from 0 (a term may alternate on it): an int, or inside the trainer's
    # step a 0-dim int64 tensor on the batch's device (the step counts itself; avvp.training.train).
    step: int | torch.Tensor = 0

    @property
    def n(self) -> int:
        return self.y.shape[0]


@dataclass(frozen=True)
class ExtraLoss:
    """An extra loss term: `term(out, first, batch, cfg)` is the weighted term, from the model's outputs on
    every row (`out`) or on the real videos only (`first`, rows < n); `augment(batch, gen)` (optional) reshapes
    the batch before the forward; `cfg` is the recipe's entry of the loss's name."""
    term: Callable[[dict, dict, Batch, dict], torch.Tensor]
    augment: Callable[[Batch, torch.Generator], Batch] | None = None
    reads_step: bool = False   # the term reads Batch.step (the trainer then counts its steps on the device)


def active_extras(names, recipe: dict, epoch: int) -> list[tuple[str, ExtraLoss, dict]]:
    """The extra losses in force in 0-based `epoch`, in the row's order (`names`: its `losses`), with their
    settings. The order is the order their terms are added to the loss (and their augmentations applied)."""
    return [(name, EXTRA_LOSSES.get(name), recipe[name]) for name in names
            if epoch + 1 >= recipe[name].get("start_epoch", 1)]
