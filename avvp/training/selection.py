"""Selection rules: which epoch of a run is kept (the recipe's `select`, and `released_select` for the
released protocol).

A registry (avvp/registry.py SELECTION_RULES): a rule names the split it scores after every epoch (or none), the
metric (a function of the ten LLP numbers), whether a tie keeps the later epoch, and the patience of its early
stop. The harness's own rules are registered here; a method's own (its released selection, a preset) in its folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from avvp.registry import SELECTION_RULES


@dataclass(frozen=True)
class Number:
    """One of the ten numbers, e.g. segment-level Type@AV; `str` names it for the log."""
    level: str
    key: str

    def __call__(self, scores: dict) -> float:
        return scores[self.level][self.key]

    def __str__(self) -> str:
        return f"{self.level} {self.key}"


@dataclass(frozen=True)
class Rule:
    split: str | None                          # scored after every epoch; None: no split, the last epoch is kept
    metric: Callable[[dict], float] | None = None   # the ten numbers -> the value to maximise
    later_wins_tie: bool = False               # a tie keeps the later epoch (else the earlier)
    patience: int | None = None                # stop after this many epochs without improvement

    def improves(self, value: float, best: float) -> bool:
        """Whether an epoch scoring `value` replaces the best so far."""
        return value >= best if self.later_wins_tie else value > best


# The default protocol: the best validation segment-level Type@AV, a tie keeping the earlier epoch.
SELECTION_RULES.register("val", Rule(split="val", metric=Number("segment", "type_av")))
# The seed paper's released code: early stop on the TEST split (docs/protocol.md#released-protocol), event-level
# Type@AV, patience 10, compared with `>=` so a tie keeps the later epoch. A preset to reproduce it, never the default.
SELECTION_RULES.register("released", Rule(split="test", metric=Number("event", "type_av"), later_wins_tie=True,
                                          patience=10))
# No selection: the last epoch.
SELECTION_RULES.register("last", Rule(split=None))
