"""File helpers, one per job: atomic writes (so a killed job never leaves a half-written output behind),
checkpoint loading with a one-line error, a file's sha256 and the code's git commit."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from avvp.errors import AvvpError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary sibling of `path` to write; on success it replaces `path`, on failure it vanishes.

    The sibling lives in the same folder so os.replace is atomic; `suffix` keeps the extension that writers
    such as np.save or savefig look at.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; outputs get the usual permissions
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_npz(path: str | os.PathLike, **arrays) -> None:
    with atomic_write(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_write(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def save_torch(path: str | os.PathLike, obj) -> None:
    import torch  # lazily: the workflow imports this module and needs no torch

    with atomic_write(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> None:
    """Write a matplotlib figure as PNG and free it (pyplot keeps every open figure alive otherwise)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_write(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)


def load_torch(path: str | os.PathLike, map_location="cpu", weights_only: bool = True,
               remedy: str = "delete it and re-run"):
    """torch.load with one line naming the file when it is truncated or foreign."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise AvvpError(f"{path}: corrupt checkpoint ({type(e).__name__}); {remedy}") from None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in blocks so a large annotation or feature file is not held in memory."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise AvvpError(f"{path}: cannot read ({e.strerror})") from None
    return h.hexdigest()


def git_commit() -> str:
    """The short commit of the code (the checkout this package lives in), or 'unknown' outside git."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary sibling folder to fill; on success it replaces `path` whole, on failure it vanishes.

    So a folder output (a generated or packed dataset) is either complete or absent, never half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
