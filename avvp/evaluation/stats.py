"""Uncertainty over test videos: bootstrap intervals of the LLP numbers and a paired bootstrap test.

Three seeds make a weak test on their own; the test videos are the other source of chance in every number.
Each of the ten LLP numbers is a mean over videos of a per-video score (`metrics.video_scores`; Type@AV per
video is (audio + visual + audio_visual) / 3, exactly linear), so resampling the videos with replacement
resamples the number. Inputs are per-video scores in [0, 1] of shape (seeds, videos) or (seeds, videos,
metrics); outputs are in percent, like `llp_scores`.

Seeds are averaged per video before resampling. Because the dataset number is linear in the per-video
scores, this is the same as drawing one set of videos and applying it to every seed, then averaging the
seeds' numbers (what the tables print as the mean).

Resampling is vectorised: a block of index arrays (resamples, videos) is turned into draw counts per
video, and every resample's mean of every metric is then one matrix product. Resamples are centred on the
observed mean (the deviations are resampled), so a metric on which every video scores the same gets an
interval of exactly zero width rather than one of rounding noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avvp.errors import AvvpError
from avvp.evaluation.metrics import KEYS, LEVELS

N_RESAMPLES = 2000        # percentile intervals at 95% need ~1,000+ resamples to settle the tails
# Index entries drawn per block (32 MiB of int64): memory stays bounded for any number of videos/resamples.
BLOCK_CELLS = 1 << 22


@dataclass(frozen=True)
class VideoScores:
    """Per-video scores of one table row: `scores` (seeds, videos[, metrics]) in [0, 1], the test
    videos' `filenames` (videos,), and `name` (the row or file) for error messages."""
    scores: np.ndarray
    filenames: np.ndarray
    name: str


@dataclass(frozen=True)
class Interval:
    """The dataset number (mean over seeds) and its percentile bootstrap interval, in percent.
    Arrays of shape (metrics,), or floats for (seeds, videos) input."""
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class Comparison:
    """Row minus base in percent: the observed difference, its percentile interval, and the two-sided
    p-value of the centred paired bootstrap test of 'mean difference = 0'."""
    diff: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p: np.ndarray


def video_matrix(per_video: dict) -> np.ndarray:
    """`metrics.video_scores` output -> (videos, 10) float64 in metrics.COLUMNS order, with Type@AV per video."""
    columns = []
    for level in LEVELS:
        scores = dict(per_video[level])
        scores["type_av"] = (scores["audio"] + scores["visual"] + scores["audio_visual"]) / 3
        columns += [np.asarray(scores[key], dtype=np.float64) for key in KEYS]
    return np.stack(columns, axis=1)


def bootstrap_ci(scores, n_resamples: int = N_RESAMPLES, confidence: float = 0.95, seed: int = 0) -> Interval:
    """95% (by default) percentile interval of each dataset number over test videos.

    `scores` is an array (seeds, videos[, metrics]) or a VideoScores. Videos are resampled with replacement,
    the same resamples for every seed and metric; seeds are averaged. Deterministic for a given seed.
    """
    name = scores.name if isinstance(scores, VideoScores) else "scores"
    x, squeeze = _seed_means(scores.scores if isinstance(scores, VideoScores) else scores, name)
    estimate = x.mean(axis=0)
    boot = estimate + _resampled_means(x - estimate, n_resamples, seed)
    low, high = _percentiles(boot, confidence)
    return Interval(*(_shape(100 * a, squeeze) for a in (estimate, low, high)))


def paired_bootstrap(row: VideoScores, base: VideoScores, n_resamples: int = N_RESAMPLES,
                     confidence: float = 0.95, seed: int = 0) -> Comparison:
    """Paired bootstrap over test videos of row - base, the SAME resampled videos for both.

    Videos are matched by filename (order may differ; any other mismatch is an AvvpError). Each side is
    averaged over its own seeds. The p-value is the centred (null-shifted) bootstrap test, two-sided:
    p = (1 + #{|d* - d| >= |d|}) / (1 + n_resamples), where d is the observed mean difference and d* a
    resampled one; d* - d mimics the spread of the mean difference when its true value is 0. The +1
    (Davison & Hinkley 1997, eq. 4.11) keeps p above 0 with finitely many resamples. A row compared with
    itself gets p = 1; a difference that is the same on every video gets an interval of zero width.
    """
    row_x, squeeze = _seed_means(row.scores, row.name)
    base_x, _ = _seed_means(base.scores, base.name)
    if row_x.shape[1] != base_x.shape[1]:
        raise AvvpError(f"{row.name}: {row_x.shape[1]} metrics per video, but {base.name} has {base_x.shape[1]}")
    diff = row_x - base_x[_align(row, base)]
    observed = diff.mean(axis=0)
    deviation = _resampled_means(diff - observed, n_resamples, seed)    # d* - d
    low, high = _percentiles(observed + deviation, confidence)
    extreme = np.count_nonzero(np.abs(deviation) >= np.abs(observed), axis=0)
    p = (1 + extreme) / (1 + n_resamples)
    return Comparison(_shape(100 * observed, squeeze), _shape(100 * low, squeeze),
                      _shape(100 * high, squeeze), _shape(p, squeeze))


# ------------------------------------------------------------------------------------------- helpers

def _seed_means(scores, name: str) -> tuple[np.ndarray, bool]:
    """(seeds, videos[, metrics]) -> (videos, metrics) mean over seeds; True when the input had no metric axis."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim not in (2, 3) or 0 in x.shape:
        raise AvvpError(f"{name}: per-video scores must be a non-empty (seeds, videos[, metrics]) array, "
                        f"got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise AvvpError(f"{name}: per-video score at (seed, video[, metric]) {tuple(bad.tolist())} is not finite")
    squeeze = x.ndim == 2
    x = x[..., None] if squeeze else x
    return x.mean(axis=0), squeeze


def _align(row: VideoScores, base: VideoScores) -> np.ndarray:
    """Index into base's videos that puts them in row's order; AvvpError unless both hold the same videos."""
    row_files, base_files = (np.asarray(v.filenames).astype(str) for v in (row, base))
    for v, files in ((row, row_files), (base, base_files)):
        if files.shape != (np.shape(v.scores)[1],):
            raise AvvpError(f"{v.name}: {files.size} filenames for {np.shape(v.scores)[1]} videos")
        names, counts = np.unique(files, return_counts=True)
        if (counts > 1).any():
            raise AvvpError(f"{v.name}: video '{names[counts > 1][0]}' appears {counts.max()} times")
    position = {f: i for i, f in enumerate(base_files)}
    missing = [f for f in row_files if f not in position]
    if missing or len(row_files) != len(base_files):
        extra = sorted(set(base_files) - set(row_files))
        raise AvvpError(f"{row.name} vs {base.name}: different test videos ({len(missing)} only in {row.name}, "
                        f"{len(extra)} only in {base.name}, e.g. '{(missing or extra)[0]}')")
    return np.array([position[f] for f in row_files], dtype=np.intp)


def _resampled_means(x: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, metrics): the mean over videos of x (videos, metrics) for each resample of the videos.

    The resamples depend only on (seed, number of videos, n_resamples), so every call with the same three
    draws the same videos: a row's interval and its paired test with any base see the same resamples.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    n = x.shape[0]
    out = np.empty((n_resamples, x.shape[1]))
    # A table draws the same resamples for every row: up to one block they are drawn once and kept.
    kept = n * n_resamples <= BLOCK_CELLS
    blocks = (_kept_counts if kept else _draw_counts)(n, n_resamples, seed)
    for start, counts in blocks:
        out[start:start + len(counts)] = (counts @ x) / n
    return out


@lru_cache(maxsize=2)
def _kept_counts(n: int, n_resamples: int, seed: int) -> tuple:
    blocks = tuple(_draw_counts(n, n_resamples, seed))
    for _, counts in blocks:
        counts.flags.writeable = False      # shared between calls
    return blocks


def _draw_counts(n: int, n_resamples: int, seed: int):
    """(start, counts (k, n) float64): how often each video is drawn in resamples start..start+k, in blocks."""
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_CELLS // n)
    for start in range(0, n_resamples, block):
        k = min(block, n_resamples - start)
        index = rng.integers(0, n, size=(k, n))
        # Draws per (resample, video): offsetting each resample's indices by k * n lets one bincount count them all.
        counts = np.bincount((index + n * np.arange(k)[:, None]).ravel(), minlength=k * n).reshape(k, n)
        yield start, counts.astype(np.float64)


def _percentiles(boot: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1 - tail], axis=0)
    return low, high


def _shape(a: np.ndarray, squeeze: bool) -> np.ndarray:
    return a[0] if squeeze else a
