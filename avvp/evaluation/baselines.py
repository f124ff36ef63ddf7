"""Two reference predictions every trained row must beat, scored like any run.

- empty: nothing predicted anywhere (a video with empty ground truth still scores 1.0, docs/protocol.md#empty-videos);
- copy labels: the TRUE video-level labels copied onto every second of both modalities. It knows the labels
  (a trained model must infer them), but not when or in which modality an event happens, which is the task.
"""

from __future__ import annotations

import numpy as np

from avvp.constants import NUM_SEGMENTS
from avvp.evaluation import metrics


def empty(gt_audio: np.ndarray, gt_visual: np.ndarray) -> dict:
    zeros = np.zeros_like(gt_audio)
    return metrics.llp_scores(zeros, zeros, gt_audio, gt_visual)


def copy_labels(labels: np.ndarray, gt_audio: np.ndarray, gt_visual: np.ndarray) -> dict:
    pred = np.repeat(labels.astype(np.uint8)[:, :, None], NUM_SEGMENTS, axis=2)
    return metrics.llp_scores(pred, pred, gt_audio, gt_visual)
