"""bench/bench_gpu.py's smoke mode runs on a CPU and writes its table (the GPU figures need a GPU: not here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import bench_gpu  # noqa: E402

from avvp.data.synth import SIZES  # noqa: E402


def test_full_sizes_are_the_full_presets():
    assert bench_gpu.FULL == {"train": SIZES["full"]["train"], "val": SIZES["full"]["val"]}


def test_smoke_mode_prints_and_writes_every_section(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench/bench_gpu.py"), "--smoke", "--device", "cpu"],
                          env={**os.environ, "OUT": str(tmp_path)}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (tmp_path / "bench_gpu.md").read_text()
    assert "SMOKE" in text  # a smoke table can never pass for a measurement
    rows = [line for line in text.splitlines() if line.startswith(("| HAN |", "| HAN + CM-Co |", "| MA* + Ours |"))]
    assert len(rows) == 3 * 2 * 2  # rows x (eager, graph) x (fp32, bf16)
    assert "HAN, 2 epochs end to end" in text
    assert [line.split("|")[1].strip() for line in text.splitlines()[-2:]] == ["1", "2"]  # K = 1, 2 workers
