"""Selection rules: which epoch of a run is kept (the recipe's `select`, and `released_select` for the
released protocol).

A registry (avvp.registry): a rule names the split it scores after every epoch (or none), the metric (a
function of the ten LLP numbers), whether a tie keeps the later epoch, and the patience of its early stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from avvp import schema
from avvp.registry import Registry

SELECTION_RULES = Registry("selection rule")
schema.known(SELECTION_RULES)


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
# The released code's early stop on the TEST split (docs/protocol.md#released-protocol): event-level Type@AV,
# patience 10, compared with `>=` so a tie keeps the later epoch. A preset to reproduce it, never the default.
SELECTION_RULES.register("released", Rule(split="test", metric=Number("event", "type_av"), later_wins_tie=True,
                                          patience=10))
# MM-Pyramid's release (docs/protocol.md#mm-pyramid-recipe): validation segment-level Type@AV like `val`, compared
# with `>=`, so a tie keeps the later epoch; no early stop.
SELECTION_RULES.register("val_later", Rule(split="val", metric=Number("segment", "type_av"), later_wins_tie=True))
# No selection: the last epoch (MA's released step 3, and its step 1 for the refinement).
SELECTION_RULES.register("last", Rule(split=None))
# JoMoLD's release (docs/protocol.md#jomold): the best VALIDATION event-level audio F, a tie keeping the later
# epoch, no early stop. Its released preset, and the noise estimator's rule under both protocols.
SELECTION_RULES.register("val_audio_event", Rule(split="val", metric=Number("event", "audio"), later_wins_tie=True))


@dataclass(frozen=True)
class MeanOfTen:
    """The mean of the ten LLP numbers (CMPAE's released selection); `str` names it for the log."""

    def __call__(self, scores: dict) -> float:
        return sum(scores[level][key] for level in scores for key in scores[level]) / 10

    def __str__(self) -> str:
        return "mean of ten"


# CMPAE's own selection (docs/protocol.md#cmpae): validation, the mean of all ten numbers, ties keep the later epoch.
SELECTION_RULES.register("val_avg_all", Rule(split="val", metric=MeanOfTen(), later_wins_tie=True))
