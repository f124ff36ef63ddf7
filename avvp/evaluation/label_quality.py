"""A label stage's removals scored: a label source that removes weak labels from a modality (MA's refinement,
JoMoLD's denoising), against the truth.

On synthetic data the removals are scored against the true modality of every training label (`against_truth`);
real LLP has no such truth for training videos. The val and test videos do have it: their dense annotations say
in which modality each weak label really occurs, so a stage also applies its rule to val and test and scores its
removals here: a weak label c of video i should leave modality m exactly when gt_m[i, c, :] is all zero.
"""

from __future__ import annotations

import numpy as np

from avvp.constants import CLASSES
from avvp.errors import AvvpError

MODALITIES = ("audio", "visual")


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def removal_scores(labels, audio, visual, gt_audio, gt_visual) -> dict:
    """Precision and recall of the removals against dense annotations, per modality overall and per class.

    labels (N, 25): weak labels; audio, visual (N, 25): refined labels; gt_audio, gt_visual (N, 25, 10):
    dense annotations. A removal is a weak label missing from the refined labels of m; it is correct when
    the annotation of m never shows the class.
    """
    return score_removals(labels, {"audio": audio, "visual": visual},
                          {"audio": np.asarray(gt_audio, dtype=bool).any(axis=-1),
                           "visual": np.asarray(gt_visual, dtype=bool).any(axis=-1)})


def score_removals(labels, refined: dict, present: dict) -> dict:
    """Per modality m: removals (weak labels missing from refined[m]) scored against present[m] (N, 25), where
    the class really occurs in m (dense annotations, or the synthetic truth); overall and per class."""
    y = np.asarray(labels) > 0
    out = {}
    for m in MODALITIES:
        removed = y & (np.asarray(refined[m]) == 0)
        absent = y & ~np.asarray(present[m], dtype=bool)
        counts = np.stack([removed.sum(0), (removed & absent).sum(0), absent.sum(0)])   # (3, 25)
        total = [int(x) for x in counts.sum(1)]
        out[m] = {"removals": total[0], "correct_removals": total[1], "should_remove": total[2],
                  "precision": _ratio(total[1], total[0]), "recall": _ratio(total[1], total[2]),
                  "per_class": {c: {"removals": int(r), "correct_removals": int(h), "should_remove": int(a),
                                    "precision": _ratio(int(h), int(r)), "recall": _ratio(int(h), int(a))}
                                for c, (r, h, a) in zip(CLASSES, counts.T) if r or a}}
    return out


def split_removal_scores(split, audio, visual) -> dict:
    """removal_scores of a val or test dataset.Split, given the (audio, visual) labels a stage left."""
    if split.gt_audio is None or split.gt_visual is None:
        raise AvvpError(f"{split.name} split: no dense annotations (gt_audio/gt_visual) in the packed dataset")
    return removal_scores(split.labels.numpy(), audio, visual, split.gt_audio, split.gt_visual)
