"""Losses on small hand-made cases whose values are computed by hand here."""

from __future__ import annotations

import math

import pytest
import torch

from avvp.training.losses import mmil_bce


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_mmil_bce_by_hand_and_clamped():
    out = {"a_prob": t([[0.8, 0.1]]), "v_prob": t([[0.5, 0.5]]), "global_prob": t([[1.0, 0.0]])}
    y = t([[1.0, 0.0]])
    smoothed = t([[0.95, 0.05]])
    audio = -(math.log(0.8) + math.log(0.9)) / 2
    visual = math.log(2)                          # p = 0.5: BCE is ln 2 whatever the target
    global_ = -math.log(1 - 1e-7)                 # p = 1 and 0 exactly: clamped to 1 - 1e-7 and 1e-7
    loss = mmil_bce(out, y, smoothed, y)
    assert loss.item() == pytest.approx(audio + visual + global_, rel=1e-5)
    # A confidently wrong prediction stays finite: -ln(1e-7) instead of infinity.
    wrong = {"a_prob": t([[0.0]]), "v_prob": t([[0.5]]), "global_prob": t([[0.5]])}
    assert mmil_bce(wrong, t([[1.0]]), t([[1.0]]), t([[1.0]])).item() == pytest.approx(
        -math.log(1e-7) + 2 * math.log(2), rel=1e-4)



