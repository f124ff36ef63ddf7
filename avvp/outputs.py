"""The one reader of what the stages wrote: every module that reads a run's outputs reads them here.

run.json and done.json (`avvp train`), metrics.json, metrics_by_gating.json, per_video.npz and predictions.npz
(`avvp evaluate`) and the profile JSON (`avvp profile`); their formats are ARCHITECTURE.md's, their places avvp/paths.py's. A missing or damaged file is one AvvpError line
naming it and the command that makes it, so no reader needs to import the stage that writes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avvp import io, paths
from avvp.errors import AvvpError

# The arrays of predictions.npz that hold the binary predictions and the annotations, with the videos' names.
BINARY = ("filenames", "audio", "visual", "gt_audio", "gt_visual")


def read_json(path: str | Path, hint: str, what: str = "JSON file") -> dict:
    """A JSON file; `hint` (how to make it) completes the one-line error of a missing or damaged one."""
    return io.read_json(path, what, hint)


def _train_hint(run: Path) -> str:
    return f"train it with: avvp train --out {run}"


def _evaluate_hint(run: Path, split: str) -> str:
    return f"make it with: avvp evaluate --run {run} --split {split}"


# --------------------------------------------------------------------------------------------- training

def run_info(run: str | Path) -> dict:
    """run.json: the job's key and what only the run knows (ARCHITECTURE.md "Run folder")."""
    return read_json(paths.run_json(run), _train_hint(Path(run)))


def done(run: str | Path) -> dict | None:
    """done.json (the selected epoch, its scores, the job's key), or None while the run is unfinished."""
    path = paths.done_json(run)
    return read_json(path, _train_hint(Path(run))) if path.exists() else None


# ------------------------------------------------------------------------------------------- evaluation

def metrics(run: str | Path, split: str = "test", gating: str | None = None) -> dict:
    """The ten numbers of a run on a split: metrics.json (the row's own gating), or under `gating` from
    metrics_by_gating.json; {"segment": {...}, "event": {...}}."""
    path = paths.metrics_json(run, split) if gating is None else paths.by_gating_json(run, split)
    scores = read_json(path, _evaluate_hint(Path(run), split))
    if gating is not None:
        scores = scores.get(gating)
        if not isinstance(scores, dict):
            raise AvvpError(f"{path}: no numbers under gating '{gating}' ({_evaluate_hint(Path(run), split)})")
    return scores


def numbers(run: str | Path, columns, split: str = "test", gating: str | None = None) -> np.ndarray:
    """`metrics` in `columns` order ("segment.audio", ...), as floats."""
    scores = metrics(run, split, gating)
    out = []
    for column in columns:
        level, key = column.split(".")
        try:
            out.append(float(scores[level][key]))
        except (KeyError, TypeError, ValueError):
            where = paths.metrics_json(run, split) if gating is None else paths.by_gating_json(run, split)
            raise AvvpError(f"{where}: no number for '{column}'") from None
    return np.array(out)


def per_video(run: str | Path, gating: str, columns, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Filenames (videos,) and per-video scores (videos, len(columns)) in [0, 1] under `gating`, from the run's
    per_video.npz."""
    path, hint = paths.per_video_npz(run, split), _evaluate_hint(Path(run), split)
    z = io.read_npz(path, ("filenames", "columns", gating), "per-video scores", hint)
    files, stored, scores = z["filenames"].astype(str), [str(c) for c in z["columns"]], z[gating]
    unknown = [c for c in columns if c not in stored]
    if unknown or scores.shape != (files.size, len(stored)):
        raise AvvpError(f"{path}: '{gating}' has shape {scores.shape} for {files.size} videos x "
                        f"{len(stored)} columns{f', no column {unknown[0]}' if unknown else ''} ({hint})")
    return files, scores[:, [stored.index(c) for c in columns]].astype(np.float64)


def predictions(run: str | Path, keys, split: str = "test") -> dict:
    """The `keys` arrays of a run's predictions.npz (ARCHITECTURE.md: binary predictions, probabilities,
    pooled features, the annotations)."""
    return io.read_npz(paths.predictions_npz(run, split), keys, "predictions", _evaluate_hint(Path(run), split))


# -------------------------------------------------------------------------------------------- reporting

def profile(name: str, results: str | Path = paths.RESULTS) -> dict:
    """The parameters and FLOPs of a row, by its name (`avvp profile`)."""
    path = paths.profile_file(paths.slug(name), results)
    return read_json(path, f'make it with: avvp profile --variant "{name}" --out {path}')
