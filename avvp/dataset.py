"""Loading a packed dataset (`avvp pack`) into memory as torch tensors, once per process.

Training reads contiguous arrays held in memory (no per-step file reads, no worker processes): the
per-second visual means (N,10,2048) are used, since pooling commutes with the model's first linear map.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avvp.errors import AvvpError


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
    path = Path(packed) / "manifest.json"
    if not path.is_file():
        raise AvvpError(f"{path}: no packed dataset here (make one with `avvp pack --data LLP_DIR --out {packed}`)")
    return json.loads(path.read_text())


def manifest_sha256(packed: str | Path) -> str:
    manifest(packed)  # a clear error when there is no packed dataset
    return hashlib.sha256((Path(packed) / "manifest.json").read_bytes()).hexdigest()


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


def load_split(packed: str | Path, split: str) -> Split:
    manifest(packed)
    folder = Path(packed) / split
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # noqa: E731  (a copy in memory)
    opt = lambda name: None if (a := _load(folder, name, required=False)) is None else np.asarray(a)  # noqa: E731
    return Split(
        name=split,
        filenames=[str(f) for f in _load(folder, "filenames")],
        audio=t(_load(folder, "audio")),
        visual=t(_load(folder, "visual")),
        motion=t(_load(folder, "motion")),
        labels=t(_load(folder, "labels")),
        gt_audio=opt("gt_audio"),
        gt_visual=opt("gt_visual"),
        true_audio=opt("true_audio"),
        true_visual=opt("true_visual"),
    )


def load_refined(path: str | Path, train: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Refined audio and visual labels (N,25) from `avvp refine`, checked against the training split."""
    path = Path(path)
    try:
        z = np.load(path)
        files, audio, visual = list(map(str, z["filenames"])), z["audio"], z["visual"]
    except (OSError, ValueError, KeyError) as e:
        raise AvvpError(f"{path}: unreadable refined labels ({e})") from None
    if files != train.filenames:
        raise AvvpError(f"{path}: refined labels are for other training videos than the packed dataset's")
    return torch.from_numpy(audio.astype(np.float32)), torch.from_numpy(visual.astype(np.float32))
