"""Shared fixtures: synthetic and hand-made LLP folders, and a packed tiny dataset.

* `synth_llp(path, preset="tiny", seed=0)` writes a synthetic LLP folder through the CLI.
* `write_llp(root, ...)` writes a hand-made LLP folder in the official layout with chosen rows (so a
  test can plant any quirk or error), with random features of the real shapes.
* fixture `tiny_llp`: a fresh synthetic tiny folder in tmp_path (function scope: tests may damage it).
* fixture `packed_tiny` (session scope): synth tiny seed 0 packed; returns the packed folder. Read-only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avvp import cli
from avvp.constants import DENSE_CSV, FEATURES, WEAK_CSV


def synth_llp(path: Path, preset: str = "tiny", seed: int = 0) -> Path:
    assert cli.main(["synth", "--preset", preset, "--seed", str(seed), "--out", str(path)]) == 0
    return Path(path)


def write_tsv(path: Path, header: list[str], rows: list[list]) -> None:
    path.write_text("\n".join(["\t".join(header)] + ["\t".join(map(str, r)) for r in rows]) + "\n")


# A small hand-made dataset: 3 train, 2 val, 2 test videos (ids are the first 11 characters).
HAND_WEAK = {
    "train": [["trainvid001_0_10", "Speech,Dog"], ["trainvid002_30_40", "Car"],
              ["trainvid003_5_15", "Cello,Violin_fiddle"]],
    "val": [["valvideo001_0_10", "Speech,Dog"], ["valvideo002_20_30", "Banjo"]],
    "test": [["testvideo01_0_10", "Speech"], ["testvideo02_10_20", "Car,Helicopter"]],
}
HAND_AUDIO = [  # filename, onset, offset, class (val + test together, as in LLP)
    ["valvideo001_0_10", 0, 4, "Speech"], ["valvideo001_0_10", 6, 10, "Speech"],
    ["valvideo001_0_10", 2, 5, "Dog"], ["valvideo002_20_30", 0, 10, "Banjo"],
    ["testvideo01_0_10", 3, 8, "Speech"], ["testvideo02_10_20", 0, 10, "Car"],
    ["testvideo02_10_20", 1, 6, "Helicopter"],
]
HAND_VISUAL = [
    ["valvideo001_0_10", 1, 10, "Dog"], ["valvideo002_20_30", 0, 7, "Banjo"],
    ["testvideo02_10_20", 0, 10, "Car"],
]


def write_llp(root: Path, weak: dict | None = None, audio_rows: list | None = None,
              visual_rows: list | None = None, seed: int = 0) -> Path:
    """An LLP folder in the official layout: the five CSVs and random features of the real shapes."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    weak = HAND_WEAK if weak is None else weak
    for split, rows in weak.items():
        write_tsv(root / WEAK_CSV[split], ["filename", "event_labels"], rows)
    dense = ["filename", "onset", "offset", "event_labels"]
    write_tsv(root / DENSE_CSV["audio"], dense, HAND_AUDIO if audio_rows is None else audio_rows)
    write_tsv(root / DENSE_CSV["visual"], dense, HAND_VISUAL if visual_rows is None else visual_rows)
    rng = np.random.default_rng(seed)
    for folder, shape in FEATURES.values():
        (root / "feats" / folder).mkdir(parents=True, exist_ok=True)
        for rows in weak.values():
            for name, _ in rows:
                np.save(root / "feats" / folder / f"{name[:11]}.npy",
                        rng.standard_normal(shape).astype(np.float32))
    return root


@pytest.fixture
def hand_llp(tmp_path) -> Path:
    return write_llp(tmp_path / "llp")


@pytest.fixture
def tiny_llp(tmp_path) -> Path:
    return synth_llp(tmp_path / "tiny")


@pytest.fixture(scope="session")
def packed_tiny(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("packed_tiny")
    data = synth_llp(base / "llp")
    out = base / "packed"
    assert cli.main(["pack", "--data", str(data), "--out", str(out)]) == 0
    return out
