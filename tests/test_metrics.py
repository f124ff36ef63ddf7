"""The LLP metrics: hand-computed golden cases, and exact agreement with a per-video reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avvp.errors import AvvpError
from avvp.evaluation.gatings import binarize
from avvp.evaluation.metrics import llp_scores, video_scores

C, T = 25, 10
ALL_KEYS = [(level, key) for level in ("segment", "event")
            for key in ("audio", "visual", "audio_visual", "type_av", "event_av")]


# ---------------------------------------------------------------------------------------------------
# A REFERENCE implementation, one video at a time, written from docs/protocol.md#metrics with plain Python loops.
# ---------------------------------------------------------------------------------------------------

def ref_events(row):
    """Maximal runs of ones in a list of 0/1, as (start, end) with end exclusive."""
    events, start = [], None
    for t, x in enumerate(list(row) + [0]):
        if x == 1 and start is None:
            start = t
        if x == 0 and start is not None:
            events.append((start, t))
            start = None
    return events


def ref_iou(a, b):
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union


def ref_segment_counts(pred_row, gt_row):
    tp = sum(1 for p, g in zip(pred_row, gt_row) if p == 1 and g == 1)
    fp = sum(1 for p, g in zip(pred_row, gt_row) if p == 1 and g == 0)
    fn = sum(1 for p, g in zip(pred_row, gt_row) if p == 0 and g == 1)
    return tp, fp, fn


def ref_event_counts(pred_row, gt_row):
    pred, gt = ref_events(pred_row), ref_events(gt_row)
    tp = sum(1 for p in pred if any(ref_iou(p, g) >= 0.5 for g in gt))
    fp = len(pred) - tp
    fn = sum(1 for g in gt if not any(ref_iou(p, g) >= 0.5 for p in pred))
    return tp, fp, fn


def ref_video_f(counts):
    """counts: one (tp, fp, fn) per class. Mean F over active classes; 1.0 if no class is active."""
    fs = []
    for tp, fp, fn in counts:
        if 2 * tp + fp + fn != 0:
            fs.append(2 * tp / (2 * tp + fp + fn))
    if not fs:
        return 1.0
    total = 0.0
    for f in fs:   # a plain running sum (Python >= 3.12's sum() of floats would compensate rounding)
        total += f
    return total / len(fs)


def ref_video(so_a, so_v, gt_a, gt_v, count):
    """The four per-video scores of one level for one video (lists of lists, class x segment)."""
    so_av = [[a * v for a, v in zip(ra, rv)] for ra, rv in zip(so_a, so_v)]
    gt_av = [[a * v for a, v in zip(ra, rv)] for ra, rv in zip(gt_a, gt_v)]
    ca = [count(p, g) for p, g in zip(so_a, gt_a)]
    cv = [count(p, g) for p, g in zip(so_v, gt_v)]
    cav = [count(p, g) for p, g in zip(so_av, gt_av)]
    pooled = [tuple(x + y for x, y in zip(a, v)) for a, v in zip(ca, cv)]
    return {"audio": ref_video_f(ca), "visual": ref_video_f(cv), "audio_visual": ref_video_f(cav),
            "event_av": ref_video_f(pooled)}


def ref_scores(so_a, so_v, gt_a, gt_v):
    """Per-video lists and the ten dataset numbers, in percent."""
    per_video, scores = {}, {}
    for level, count in (("segment", ref_segment_counts), ("event", ref_event_counts)):
        videos = [ref_video(*(x[i].tolist() for x in (so_a, so_v, gt_a, gt_v)), count)
                  for i in range(len(so_a))]
        per_video[level] = {k: [v[k] for v in videos] for k in videos[0]}
        mean = {k: 100 * float(np.mean(np.array(v))) for k, v in per_video[level].items()}
        mean["type_av"] = (mean["audio"] + mean["visual"] + mean["audio_visual"]) / 3
        scores[level] = mean
    return per_video, scores


# ---------------------------------------------------------------------------------------------------
# Helpers for golden cases
# ---------------------------------------------------------------------------------------------------

def empty(n=1):
    return np.zeros((n, C, T), dtype=np.uint8)


def put(x, c, start, end, video=0):
    """Switch on [start, end) of class c of one video (in place) and return x."""
    x[video, c, start:end] = 1
    return x


def check_against_reference(so_a, so_v, gt_a, gt_v):
    got_video = video_scores(so_a, so_v, gt_a, gt_v)
    got = llp_scores(so_a, so_v, gt_a, gt_v)
    want_video, want = ref_scores(so_a, so_v, gt_a, gt_v)
    for level in want_video:
        for key, values in want_video[level].items():
            # Exact float equality, value by value.
            assert got_video[level][key].tolist() == values, (level, key)
    assert got == want
    return got


# ---------------------------------------------------------------------------------------------------
# Golden cases, computed by hand
# ---------------------------------------------------------------------------------------------------

def test_nothing_predicted_nothing_present_scores_100():
    got = llp_scores(empty(3), empty(3), empty(3), empty(3))
    for level, key in ALL_KEYS:
        assert got[level][key] == 100.0


def test_nothing_predicted_with_events_present_scores_0():
    gt_a = put(empty(), 3, 2, 5)
    gt_v = put(empty(), 3, 4, 8)
    got = llp_scores(empty(), empty(), gt_a, gt_v)
    for level, key in ALL_KEYS:
        assert got[level][key] == 0.0


@pytest.mark.parametrize("pred,gt,matches", [
    ((0, 4), (0, 8), True),    # IoU 4/8 = 0.5 exactly: a match
    ((0, 3), (1, 4), True),    # shifted: inter 2, union 4 -> 0.5: a match
    ((2, 7), (4, 9), False),   # inter 3, union 7 -> 0.43
    ((0, 4), (0, 9), False),   # 4/9, the closest to 0.5 from below on 10 segments
    ((5, 6), (5, 7), True),    # single-second event vs two seconds: 0.5
    ((5, 6), (4, 7), False),   # 1/3
])
def test_event_iou_threshold(pred, gt, matches):
    so = put(empty(), 7, *pred)
    g = put(empty(), 7, *gt)
    got = llp_scores(so, empty(), g, empty())
    # One active class with one event each: TP=1 -> F=1; else FP=1, FN=1 -> F=0.
    assert got["event"]["audio"] == (100.0 if matches else 0.0)
    # Segment level of the same row: 2TP / (2TP + FP + FN) over seconds, by hand.
    inter = max(0, min(pred[1], gt[1]) - max(pred[0], gt[0]))
    fp = (pred[1] - pred[0]) - inter
    fn = (gt[1] - gt[0]) - inter
    assert got["segment"]["audio"] == 100 * (2 * inter / (2 * inter + fp + fn))
    check_against_reference(so, empty(), g, empty())


def test_one_prediction_against_two_ground_truth_events():
    # gt events [0,2) and [3,5); predicted [0,5) has IoU 2/5 with each: one FP and two FN -> F = 0.
    so = put(empty(), 0, 0, 5)
    g = put(put(empty(), 0, 0, 2), 0, 3, 5)
    got = llp_scores(so, empty(), g, empty())
    assert got["event"]["audio"] == 0.0
    # Predicted [0,2) and [3,5) against gt [0,5): each has IoU 2/5: 2 FP, 1 FN.
    got = llp_scores(g, empty(), so, empty())
    assert got["event"]["audio"] == 0.0
    # Predicted [0,2) and [3,4) against gt [0,2) and [3,5): TP 2 -> F = 1.
    so2 = put(put(empty(), 0, 0, 2), 0, 3, 4)
    assert llp_scores(so2, empty(), g, empty())["event"]["audio"] == 100.0


def test_event_av_pools_counts_unlike_averaging():
    # Class 4, audio: two events, both predicted exactly (TP 2). Visual: one predicted event, none true (FP 1).
    so_a = put(put(empty(), 4, 0, 2), 4, 5, 7)
    gt_a = so_a.copy()
    so_v = put(empty(), 4, 8, 10)
    gt_v = empty()
    got = llp_scores(so_a, so_v, gt_a, gt_v)
    # Event level: pooled 2*2 / (2*2 + 1) = 0.8, while the mean of F_a = 1 and F_v = 0 would be 0.5.
    assert got["event"]["event_av"] == 100 * (4 / 5)
    # Segment level pools too: audio TP 4 seconds, visual FP 2 seconds -> 8 / 10.
    assert got["segment"]["event_av"] == 100 * (8 / 10)
    for level in ("segment", "event"):
        assert got[level]["audio"] == 100.0
        assert got[level]["visual"] == 0.0
        # SO_av = SO_a * SO_v is empty and so is GT_av: nothing active, so 1.0.
        assert got[level]["audio_visual"] == 100.0
        assert got[level]["type_av"] == (100.0 + 0.0 + 100.0) / 3
    check_against_reference(so_a, so_v, gt_a, gt_v)


def test_macro_mean_over_active_classes_only():
    # Class 0 perfect (F 1), class 1 predicted but absent (F 0), class 2 present but missed (F 0):
    # the video scores (1 + 0 + 0) / 3, the 22 inactive classes do not count.
    so = put(put(empty(), 0, 0, 10), 1, 3, 4)
    g = put(put(empty(), 0, 0, 10), 2, 6, 9)
    got = llp_scores(so, empty(), g, empty())
    assert got["segment"]["audio"] == 100 * (1 / 3)
    assert got["event"]["audio"] == 100 * (1 / 3)
    # The visual track is empty on both sides for this video: 1.0.
    assert got["segment"]["visual"] == 100.0


def test_type_av_is_mean_of_the_three_dataset_means():
    # Two videos. Video 0: audio class 0 predicted on [0,4) against [0,8) (segment F = 8/12 = 2/3, event
    # F = 1: IoU 0.5); no visual at all. Video 1: visual class 5 on [2,6) predicted exactly, audio empty,
    # plus a spurious audio prediction of class 9 on [0,1): audio F = 0.
    so_a, so_v, gt_a, gt_v = empty(2), empty(2), empty(2), empty(2)
    put(so_a, 0, 0, 4, video=0)
    put(gt_a, 0, 0, 8, video=0)
    put(so_v, 5, 2, 6, video=1)
    put(gt_v, 5, 2, 6, video=1)
    put(so_a, 9, 0, 1, video=1)
    got = llp_scores(so_a, so_v, gt_a, gt_v)
    seg_a = 100 * float(np.mean([2 / 3, 0.0]))
    seg_v = 100 * float(np.mean([1.0, 1.0]))
    seg_av = 100 * float(np.mean([1.0, 1.0]))  # no class has both audio and visual anywhere
    assert got["segment"]["audio"] == seg_a
    assert got["segment"]["visual"] == seg_v == 100.0
    assert got["segment"]["type_av"] == (seg_a + seg_v + seg_av) / 3
    assert got["event"]["audio"] == 100 * float(np.mean([1.0, 0.0])) == 50.0
    assert got["event"]["type_av"] == (50.0 + 100.0 + 100.0) / 3
    # Event@AV of video 1: class 5 pooled TP 1 -> 1, class 9 FP 1 -> 0: 0.5; video 0: audio only -> 1.
    assert got["event"]["event_av"] == 100 * float(np.mean([1.0, 0.5]))
    check_against_reference(so_a, so_v, gt_a, gt_v)


def test_oracle_scores_100_on_all_ten():
    rng = np.random.default_rng(1)
    gt_a = (rng.random((40, C, T)) < 0.15).astype(np.uint8)
    gt_v = (rng.random((40, C, T)) < 0.15).astype(np.uint8)
    gt_v[:5] = 0   # videos without visual events are legitimate
    got = llp_scores(gt_a, gt_v, gt_a, gt_v)
    for level, key in ALL_KEYS:
        assert got[level][key] == 100.0


def test_per_video_scores_exposed():
    so = put(empty(2), 0, 0, 10)
    g = put(empty(2), 0, 0, 5)
    pv = video_scores(so, empty(2), g, empty(2))
    # Video 0: segment F = 2*5 / (10 + 5) = 2/3; event: IoU 0.5 -> 1. Video 1: nothing active -> 1.
    assert pv["segment"]["audio"].tolist() == [2 / 3, 1.0]
    assert pv["event"]["audio"].tolist() == [1.0, 1.0]
    assert set(pv["segment"]) == {"audio", "visual", "audio_visual", "event_av"}


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="gt_visual"):
        llp_scores(empty(), empty(), empty(), empty(2))
    bad = empty()
    bad[0, 0, 0] = 2
    with pytest.raises(ValueError, match="pred_visual"):
        llp_scores(empty(), bad, empty(), empty())
    with pytest.raises(ValueError):
        llp_scores(empty(0), empty(0), empty(0), empty(0))


# ---------------------------------------------------------------------------------------------------
# The vectorised metrics agree exactly with the reference on random inputs
# ---------------------------------------------------------------------------------------------------

PATTERNS = ["empty", "sparse", "medium", "dense", "ones", "single_seconds", "one_event"]


def pattern_matrix(rng, kind, n):
    if kind == "empty":
        return np.zeros((n, C, T), dtype=np.uint8)
    if kind in ("sparse", "medium", "dense"):
        p = {"sparse": 0.05, "medium": 0.4, "dense": 0.9}[kind]
        # Only some classes of a video are present at all, as in LLP.
        classes = rng.random((n, C, 1)) < 0.3
        return ((rng.random((n, C, T)) < p) & classes).astype(np.uint8)
    if kind == "ones":
        return (rng.random((n, C, 1)) < 0.2).repeat(T, axis=2).astype(np.uint8)   # all-ones rows
    if kind == "single_seconds":
        x = (rng.random((n, C, T)) < 0.3) & (rng.random((n, C, 1)) < 0.3)
        x[:, :, 1::2] = False   # isolated one-second events
        return x.astype(np.uint8)
    x = np.zeros((n, C, T), dtype=np.uint8)       # one_event: one run per active class
    for i, c in zip(*np.nonzero(rng.random((n, C)) < 0.2)):
        s = rng.integers(0, T)
        x[i, c, s:rng.integers(s + 1, T + 1)] = 1
    return x


def perturb(rng, gt, kind):
    """A prediction near the ground truth, so IoUs land near 0.5 often."""
    if kind == "copy":
        return gt.copy()
    if kind == "shift":
        out = np.zeros_like(gt)
        s = int(rng.integers(-2, 3))
        if s >= 0:
            out[..., s:] = gt[..., :T - s]
        else:
            out[..., :s] = gt[..., -s:]
        return out
    if kind == "flip":
        return gt ^ (rng.random(gt.shape) < 0.1).astype(np.uint8)
    if kind == "grow":
        out = gt.copy()
        out[..., 1:] |= gt[..., :-1]
        return out
    return None


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6),
       kinds=st.lists(st.sampled_from(PATTERNS), min_size=4, max_size=4),
       near=st.lists(st.sampled_from(["copy", "shift", "flip", "grow", "independent"]), min_size=2, max_size=2))
def test_vectorised_equals_reference(seed, n, kinds, near):
    rng = np.random.default_rng(seed)
    gt_a = pattern_matrix(rng, kinds[0], n)
    gt_v = pattern_matrix(rng, kinds[1], n)
    so_a = perturb(rng, gt_a, near[0])
    so_v = perturb(rng, gt_v, near[1])
    so_a = pattern_matrix(rng, kinds[2], n) if so_a is None else so_a
    so_v = pattern_matrix(rng, kinds[3], n) if so_v is None else so_v
    check_against_reference(so_a, so_v, gt_a, gt_v)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 1), min_size=T, max_size=T), min_size=4, max_size=4))
def test_single_row_equals_reference(rows):
    """Every pair of 10-second rows (shrinks to a minimal example when they disagree)."""
    so_a, so_v, gt_a, gt_v = (np.zeros((1, C, T), dtype=np.uint8) for _ in range(4))
    for x, row in zip((so_a, so_v, gt_a, gt_v), rows):
        x[0, 11] = row
    check_against_reference(so_a, so_v, gt_a, gt_v)


def test_all_row_pairs_event_counts_exhaustive_sample():
    """Many (pred, gt) row pairs at once, in one batch: the same counts as the reference, row by row."""
    from avvp.evaluation.metrics import event_counts
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 2**T, size=(4000, 2))
    bits = ((codes[..., None] >> np.arange(T)) & 1).astype(bool)   # (4000, 2, T)
    pred = bits[:, 0].reshape(160, C, T)
    gt = bits[:, 1].reshape(160, C, T)
    tp, fp, fn = event_counts(pred, gt)
    for i in range(160):
        for c in range(C):
            assert (tp[i, c], fp[i, c], fn[i, c]) == ref_event_counts(pred[i, c].astype(int).tolist(),
                                                                       gt[i, c].astype(int).tolist())


# ---------------------------------------------------------------------------------------------------
# binarize: probabilities -> decisions, with HAN or MA gating
# ---------------------------------------------------------------------------------------------------

def test_binarize_han_gating():
    frame = np.zeros((1, T, 2, C))
    frame[0, 3, 0, 2] = 0.5       # audio, second 3, class 2: exactly the threshold -> on
    frame[0, 4, 0, 2] = 0.4999    # just under -> off
    frame[0, 7, 1, 2] = 0.9       # visual, second 7, class 2
    frame[0, 1, 0, 6] = 0.9       # class 6 audio, but the video-level gate is off
    glob = np.zeros((1, C))
    glob[0, 2] = 0.5
    glob[0, 6] = 0.49
    a_prob = np.ones((1, C))      # ignored by HAN gating
    audio, visual = binarize({"frame_prob": frame, "global_prob": glob, "a_prob": a_prob, "v_prob": a_prob}, "han")
    assert audio.dtype == np.uint8 and audio.shape == (1, C, T) and visual.shape == (1, C, T)
    want_a, want_v = np.zeros((1, C, T), np.uint8), np.zeros((1, C, T), np.uint8)
    want_a[0, 2, 3] = 1           # class x second
    want_v[0, 2, 7] = 1
    np.testing.assert_array_equal(audio, want_a)
    np.testing.assert_array_equal(visual, want_v)
    # HAN gating needs no a_prob / v_prob.
    np.testing.assert_array_equal(binarize({"frame_prob": frame, "global_prob": glob})[0], want_a)


def test_binarize_ma_gating_is_per_modality():
    frame = np.full((2, T, 2, C), 0.8)
    glob = np.zeros((2, C))       # ignored by MA gating
    a_prob = np.zeros((2, C))
    v_prob = np.zeros((2, C))
    a_prob[0, 1] = 0.5            # audio of class 1 on in video 0 only
    v_prob[1, 3] = 0.7            # visual of class 3 on in video 1 only
    probs = {"frame_prob": frame, "global_prob": glob, "a_prob": a_prob, "v_prob": v_prob}
    audio, visual = binarize(probs, "ma")
    assert audio.sum() == T and audio[0, 1].tolist() == [1] * T
    assert visual.sum() == T and visual[1, 3].tolist() == [1] * T
    # The same probabilities under HAN gating: the global gate is off everywhere.
    assert binarize(probs, "han")[0].sum() == 0
    with pytest.raises(ValueError):
        binarize({**probs, "a_prob": None}, "ma")
    with pytest.raises(AvvpError, match=r"unknown gating 'avg' \(known: han, cmpae, ma\)"):
        binarize(probs, "avg")


def test_binarize_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    frame = torch.rand(3, T, 2, C, requires_grad=True)
    glob = torch.rand(3, C)
    a, v = binarize({"frame_prob": frame, "global_prob": glob})
    a2, v2 = binarize({"frame_prob": frame.detach().numpy(), "global_prob": glob.numpy()})
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(v, v2)
