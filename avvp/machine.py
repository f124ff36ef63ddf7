"""What this machine computes natively, read without importing torch (the Snakefile asks when it plans jobs)."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_has_native_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether this CPU computes bf16 natively (the AVX512-BF16 or AMX-BF16 flag). Elsewhere CPU autocast emulates
    bf16, which on an AVX2-only AMD EPYC made HAN's default epoch 12x slower than fp32 (docs/compute.md#precision).
    No cpuinfo file (not Linux): False."""
    try:
        lines = Path(cpuinfo).read_text().splitlines()
    except OSError:
        return False
    flags = next((line for line in lines if line.startswith("flags")), "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags
