import numpy as np

from avvp.evaluation import baselines


def test_copy_labels_is_perfect_when_every_event_fills_the_video_in_both_modalities():
    labels = np.zeros((3, 25), np.uint8)
    labels[0, [0, 4]] = 1
    labels[1, 7] = 1
    labels[2, [1, 2, 3]] = 1
    gt = np.repeat(labels[:, :, None], 10, axis=2)
    s = baselines.copy_labels(labels, gt, gt)
    assert all(v == 100.0 for level in s.values() for v in level.values())


def test_copy_labels_pays_for_the_wrong_modality_and_empty_scores_only_empty_videos():
    labels = np.zeros((2, 25), np.uint8)
    labels[:, 0] = 1
    gt_a = np.repeat(labels[:, :, None], 10, axis=2)
    gt_v = np.zeros_like(gt_a)
    gt_v[1] = gt_a[1]           # video 0: audio only; video 1: both
    s = baselines.copy_labels(labels, gt_a, gt_v)
    assert s["segment"]["audio"] == 100.0
    assert s["segment"]["visual"] == 50.0   # video 0's visual prediction is all false positives: F = 0
    e = baselines.empty(gt_a, gt_v)
    assert e["segment"]["audio"] == 0.0
    assert e["segment"]["visual"] == 50.0   # video 0 has no visual event: empty is right there (1.0)
