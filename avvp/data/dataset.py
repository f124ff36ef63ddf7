"""Loading a packed dataset (`avvp pack`) into memory as torch tensors, once per process.

Training reads contiguous arrays held in memory (no per-step file reads, no worker processes): the
per-second visual means (N,10,2048) are used, since pooling commutes with the model's first linear map.
Loading checks every array's shape against the manifest and every float array for NaN/inf, so a packed
dataset damaged after packing (a bad disk, a hand edit) is one line naming the file and the first bad video,
not a PyTorch error deep inside training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avvp.constants import FEATURES, NUM_CLASSES, NUM_SEGMENTS
from avvp.errors import AvvpError
from avvp.io import read_json, sha256_file
from avvp.paths import manifest_json

# Per-video shape of each packed array (the visual array holds the per-second means of the 80 frames).
VIDEO_SHAPES = {
    "filenames": (),
    "labels": (NUM_CLASSES,),
    "audio": FEATURES["audio"][1],
    "visual": (NUM_SEGMENTS, FEATURES["visual"][1][1]),
    "motion": FEATURES["motion"][1],
    "gt_audio": (NUM_CLASSES, NUM_SEGMENTS),
    "gt_visual": (NUM_CLASSES, NUM_SEGMENTS),
    "true_audio": (NUM_CLASSES,),
    "true_visual": (NUM_CLASSES,),
}
FLOAT_ARRAYS = ("labels", "audio", "visual", "motion")


@dataclass
class Split:
    name: str
    filenames: list[str]
    audio: torch.Tensor      # (N, 10, 128)
    visual: torch.Tensor     # (N, 10, 2048) per-second means of the ResNet-152 frames
    motion: torch.Tensor     # (N, 10, 512)
    labels: torch.Tensor     # (N, 25) weak video-level labels, float
    gt_audio: np.ndarray | None = None    # (N, 25, 10) uint8, val/test only
    gt_visual: np.ndarray | None = None
    true_audio: np.ndarray | None = None  # (N, 25) synthetic train only: true modality of each label
    true_visual: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.filenames)

    def to(self, device) -> "Split":
        for key in ("audio", "visual", "motion", "labels"):
            setattr(self, key, getattr(self, key).to(device))
        return self


def manifest(packed: str | Path) -> dict:
    path = manifest_json(packed)
    if not path.is_file():
        raise AvvpError(f"{path}: no packed dataset here (make one with `avvp pack --data LLP_DIR --out {packed}`)")
    return read_json(path, "manifest", f"pack it again with `avvp pack --out {packed}`")


def manifest_sha256(packed: str | Path) -> str:
    manifest(packed)  # a clear error when there is no packed dataset
    return sha256_file(manifest_json(packed))


def _load(folder: Path, name: str, required: bool = True):
    path = folder / f"{name}.npy"
    if not path.is_file():
        if required:
            raise AvvpError(f"{path}: missing from the packed dataset (re-run `avvp pack`)")
        return None
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise AvvpError(f"{path}: unreadable packed array ({e})") from None


def check_shape(path: Path, array: np.ndarray, videos: int) -> None:
    """The array holds one row per video of the manifest, each of the packed layout's shape."""
    expected = (videos, *VIDEO_SHAPES[path.stem])
    if array.shape != expected:
        raise AvvpError(f"{path}: shape {tuple(array.shape)}, expected {expected} from manifest.json; "
                        "re-run avvp pack")


def check_finite(path: Path, array: np.ndarray, filenames: list[str]) -> None:
    """Every value finite; on a failure (only then) find the first bad video, so the check stays one pass."""
    if np.isfinite(array).all():
        return
    bad = ~np.isfinite(array).reshape(len(array), -1).all(axis=1)
    video = int(np.argmax(bad))
    raise AvvpError(f"{path}: non-finite value in video {video} ({filenames[video]}); re-run avvp pack")


def load_split(packed: str | Path, split: str) -> Split:
    videos = manifest(packed)["splits"].get(split)
    if videos is None:
        raise AvvpError(f"{manifest_json(packed)}: no split '{split}' in the packed dataset")
    folder = Path(packed) / split
    arrays = {}
    for name in VIDEO_SHAPES:
        array = _load(folder, name, required=name in ("filenames", *FLOAT_ARRAYS))
        if array is not None:
            check_shape(folder / f"{name}.npy", array, videos)
            arrays[name] = np.array(array, dtype=np.float32) if name in FLOAT_ARRAYS else np.asarray(array)
    filenames = [str(f) for f in arrays.pop("filenames")]
    for name in FLOAT_ARRAYS:
        check_finite(folder / f"{name}.npy", arrays[name], filenames)
        arrays[name] = torch.from_numpy(arrays[name])
    return Split(name=split, filenames=filenames, **arrays)
