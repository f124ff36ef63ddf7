"""The LLP metrics (docs/protocol.md#metrics): segment- and event-level F-scores, vectorised over videos.

The official protocol is defined one video at a time. For each video it takes binary (class x segment)
matrices of predictions `SO_a`, `SO_v`, `SO_av = SO_a * SO_v` and ground truth `GT_a`, `GT_v`, `GT_av`,
counts per class TP / FP / FN, turns them into F_c = 2TP / (2TP + FP + FN) for every ACTIVE class (one
that is predicted or present), and scores the video with the mean of those F_c, or 1.0 when no class is
active. The dataset score is the mean over videos, times 100.

Here every video is scored at once with numpy, and the result is bit-for-bit the per-video one: the
counts are integers, F_c is one correctly rounded division, the per-video mean adds the active F_c in
class order (as a running sum over a list would) before dividing by their number, and the dataset mean is
`np.mean` over the per-video array. tests/test_metrics.py checks this against a plain per-video
implementation with exact float equality.
"""

from __future__ import annotations

import numpy as np

from avvp.constants import COLUMNS, KEYS, LEVELS  # noqa: F401  (the ten numbers' names, here as everywhere)

THRESHOLD = 0.5       # probability -> decision, everywhere in the protocol
IOU_THRESHOLD = 0.5   # an event matches when IoU >= 0.5 (kept as the exact test 2 * inter >= union)

# The ten numbers' names: LEVELS, KEYS and COLUMNS ("segment.audio", ...; tables.yaml's, per_video.npz's),
# defined in avvp/constants.py and imported above.


# ---------------------------------------------------------------------------------------------------
# Probabilities -> binary predictions (the gates: avvp/evaluation/gatings.py)
# ---------------------------------------------------------------------------------------------------

def gated(frame_prob, gate_audio: np.ndarray, gate_visual: np.ndarray, threshold: float = THRESHOLD):
    """Binary audio and visual predictions (N, 25, 10) uint8: a segment is on where its probability is at least
    `threshold` (0.5, the protocol's) and the video-level gate (N, 25) of its modality is open
    (avvp.evaluation.gatings says which gate and threshold).

    frame_prob (N, 10, 2, 25): per-segment class probabilities, modality 0 audio, 1 visual.
    """
    frame_prob = _to_numpy(frame_prob)
    on = frame_prob >= threshold                      # (N, T, 2, C)
    audio = on[:, :, 0, :] & gate_audio[:, None, :]   # (N, T, C)
    visual = on[:, :, 1, :] & gate_visual[:, None, :]
    # (N, T, C) -> (N, C, T): the protocol's matrices are class x segment.
    return (np.ascontiguousarray(audio.transpose(0, 2, 1), dtype=np.uint8),
            np.ascontiguousarray(visual.transpose(0, 2, 1), dtype=np.uint8))


def _to_numpy(x) -> np.ndarray:
    """A numpy view of an array or a torch tensor (detached, on the CPU: validation passes them as is)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x)


def video_gate(probs: dict, name: str, threshold=THRESHOLD) -> np.ndarray:
    """Video-level decision `probs[name] >= threshold` of shape (N, C), checked against probs["frame_prob"];
    `threshold` is one number or one per class (C,)."""
    frame_prob = _to_numpy(probs["frame_prob"])
    if frame_prob.ndim != 4 or frame_prob.shape[2] != 2:
        raise ValueError(f"frame_prob must be (N, T, 2, C), got {frame_prob.shape}")
    n, _, _, c = frame_prob.shape
    if probs.get(name) is None:
        raise ValueError(f"{name} is required for this gating")
    prob = _to_numpy(probs[name])
    if prob.shape != (n, c):
        raise ValueError(f"{name} must be ({n}, {c}), got {prob.shape}")
    return prob >= threshold


# ---------------------------------------------------------------------------------------------------
# TP / FP / FN counts per (video, class)
# ---------------------------------------------------------------------------------------------------

def segment_counts(pred: np.ndarray, gt: np.ndarray):
    """TP, FP, FN over the segments of each (video, class) row; bool (N, C, T) -> three int (N, C)."""
    tp = np.count_nonzero(pred & gt, axis=-1)
    fp = np.count_nonzero(pred & ~gt, axis=-1)
    fn = np.count_nonzero(~pred & gt, axis=-1)
    return tp, fp, fn


def event_counts(pred: np.ndarray, gt: np.ndarray):
    """TP, FP, FN over the events of each (video, class) row; bool (N, C, T) -> three int (N, C).

    An event is a maximal run of ones. A predicted event is a TP when some ground-truth event of the same
    row has IoU >= 0.5 with it, else an FP; a ground-truth event that no predicted event matches is an FN.
    """
    n, c, t = pred.shape
    pred = pred.reshape(n * c, t)
    gt = gt.reshape(n * c, t)
    n_pred = _run_count(pred)
    n_gt = _run_count(gt)
    tp = np.zeros(n * c, dtype=np.intp)
    fn = n_gt.copy()
    # Only rows with events on both sides can match; usually a small fraction of all rows.
    rows = np.flatnonzero((n_pred > 0) & (n_gt > 0))
    if rows.size:
        match = _iou_match(*_runs(pred[rows]), *_runs(gt[rows]))   # (R, K_pred, K_gt)
        tp[rows] = np.count_nonzero(match.any(axis=2), axis=1)
        fn[rows] -= np.count_nonzero(match.any(axis=1), axis=1)
    fp = n_pred - tp
    return tp.reshape(n, c), fp.reshape(n, c), fn.reshape(n, c)


def _edges(rows: np.ndarray) -> np.ndarray:
    """(M, T) bool -> (M, T + 1) int8: +1 where a run starts, -1 just after a run ends."""
    return np.diff(rows.view(np.int8), axis=1, prepend=np.int8(0), append=np.int8(0))


def _run_count(rows: np.ndarray) -> np.ndarray:
    """Number of maximal runs of ones in each row."""
    return np.count_nonzero(_edges(rows) == 1, axis=1)


def _runs(rows: np.ndarray):
    """Start and end (end-exclusive) of every run of each row, as (M, K) arrays, K = ceil(T / 2).

    Unused slots hold the empty interval [0, 0), which overlaps nothing and so never matches.
    """
    m, t = rows.shape
    edges = _edges(rows)
    row, start = np.nonzero(edges == 1)
    _, end = np.nonzero(edges == -1)   # same row-major order: the k-th end closes the k-th start
    per_row = np.bincount(row, minlength=m)
    slot = np.arange(row.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    k = (t + 1) // 2
    starts = np.zeros((m, k), dtype=np.int16)
    ends = np.zeros((m, k), dtype=np.int16)
    starts[row, slot] = start
    ends[row, slot] = end
    return starts, ends


def _iou_match(p_start, p_end, g_start, g_end) -> np.ndarray:
    """(R, K, K) bool: predicted run i and ground-truth run j of a row have IoU >= 0.5."""
    ps, pe = p_start[:, :, None], p_end[:, :, None]
    gs, ge = g_start[:, None, :], g_end[:, None, :]
    inter = np.minimum(pe, ge) - np.maximum(ps, gs)
    # Overlapping intervals: their union is their hull. IoU >= 0.5 <=> 2 * inter >= union, exactly.
    union = np.maximum(pe, ge) - np.minimum(ps, gs)
    return (inter > 0) & (2 * inter >= union)


# ---------------------------------------------------------------------------------------------------
# Counts -> per-video F -> dataset scores
# ---------------------------------------------------------------------------------------------------

def class_f(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) F_c = 2TP / (2TP + FP + FN) of every video and class (0 where inactive), and the active mask
    (a class predicted or present in the video)."""
    denom = 2 * tp + fp + fn
    active = denom > 0
    return np.divide(2 * tp, denom, out=np.zeros(denom.shape), where=active), active


def video_f(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Per-video score (N,): mean of F_c = 2TP / (2TP + FP + FN) over active classes, 1.0 if none."""
    f, active = class_f(tp, fp, fn)
    # Sum in class order, one class at a time, as the per-video definition's running sum does
    # (inactive classes add an exact 0.0); np.sum over the class axis would add pairwise instead.
    total = np.zeros(f.shape[0])
    for c in range(f.shape[1]):
        total += f[:, c]
    n_active = np.count_nonzero(active, axis=1)
    return np.where(n_active > 0, total / np.maximum(n_active, 1), 1.0)


def video_scores(pred_audio, pred_visual, gt_audio, gt_visual) -> dict:
    """Per-video scores in [0, 1]: {"segment"|"event": {"audio", "visual", "audio_visual", "event_av"}}.

    Each value is an (N,) float64 array, the per-video F of docs/protocol.md#metrics (1.0 for a video where
    nothing is active). `llp_scores` averages these over videos.
    """
    so_a, so_v, gt_a, gt_v = _binary_inputs(pred_audio, pred_visual, gt_audio, gt_visual)
    pairs = {"audio": (so_a, gt_a), "visual": (so_v, gt_v), "audio_visual": (so_a & so_v, gt_a & gt_v)}
    scores = {}
    for level, counts in (("segment", segment_counts), ("event", event_counts)):
        c = {name: counts(so, gt) for name, (so, gt) in pairs.items()}
        level_scores = {name: video_f(*c[name]) for name in pairs}
        # Event@AV: pool the audio and visual TP, FP, FN of each class, then F per class as usual.
        pooled = (a + v for a, v in zip(c["audio"], c["visual"]))
        level_scores["event_av"] = video_f(*pooled)
        scores[level] = level_scores
    return scores


def dataset_scores(per_video: dict) -> dict:
    """The five numbers of one level, in percent: means over videos; Type@AV from the three means."""
    audio, visual, av = (100 * float(np.mean(per_video[k])) for k in ("audio", "visual", "audio_visual"))
    return {
        "audio": audio,
        "visual": visual,
        "audio_visual": av,
        "type_av": (audio + visual + av) / 3,
        "event_av": 100 * float(np.mean(per_video["event_av"])),
    }


def llp_scores(pred_audio, pred_visual, gt_audio, gt_visual) -> dict:
    """The ten LLP numbers, in percent (unrounded floats).

    Inputs are (N, 25, 10) 0/1 arrays (class x second). Returns
    {"segment": {"audio", "visual", "audio_visual", "type_av", "event_av"}, "event": {same five}}.
    """
    per_video = video_scores(pred_audio, pred_visual, gt_audio, gt_visual)
    return {level: dataset_scores(per_video[level]) for level in LEVELS}


def _binary_inputs(*arrays):
    """Check the four (N, C, T) 0/1 arrays agree in shape and hold only 0/1; return them as bool."""
    names = ("pred_audio", "pred_visual", "gt_audio", "gt_visual")
    arrays = [_to_numpy(a) for a in arrays]
    shape = arrays[0].shape
    if len(shape) != 3 or shape[0] == 0:
        raise ValueError(f"pred_audio must be a non-empty (N, C, T) array, got shape {shape}")
    out = []
    for name, a in zip(names, arrays):
        if a.shape != shape:
            raise ValueError(f"{name} has shape {a.shape}, pred_audio has {shape}")
        if a.dtype != np.bool_:
            if not ((a == 0) | (a == 1)).all():
                raise ValueError(f"{name} holds values other than 0 and 1")
            a = a != 0
        out.append(np.ascontiguousarray(a))
    return out
