"""Cost of the packed-split check (avvp.data.dataset.check_finite) on a `full`-sized visual array.

    .venv/bin/python bench/bench_dataset_check.py

The full preset's training split is 10,000 x 10 x 2048 float32 (819 MB): the check must stay well under a
second beside the copy into memory that loading makes anyway.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from avvp.data.dataset import check_finite


def main(videos: int = 10_000) -> None:
    visual = np.random.default_rng(0).standard_normal((videos, 10, 2048), dtype=np.float32)
    names = [f"video{i:05d}" for i in range(videos)]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        check_finite(Path("visual.npy"), visual, names)
        times.append(time.perf_counter() - t0)
    print(f"check_finite on {visual.shape} float32 ({visual.nbytes / 1e6:.0f} MB): best {min(times):.3f} s "
          f"of {len(times)}")


if __name__ == "__main__":
    main()
