"""Time and peak memory of `avvp synth` and `avvp pack`, per preset. Run by hand, never in tests.

    python bench/bench_data.py                  # tiny and default
    python bench/bench_data.py full --keep DIR  # the LLP-sized preset (6.5 GB of frames, twice)

Each command runs in a fresh measuring process, whose RUSAGE_CHILDREN peak resident size is then that
one command's (getrusage of children is a running maximum, so it must not be shared between commands).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(cmd: list[str]) -> dict:
    """Run `cmd` as a child of this process: wall seconds and its peak RSS in MB."""
    t = time.perf_counter()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    seconds = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss      # kilobytes on Linux
    return {"rc": rc, "seconds": round(seconds, 2), "peak_mb": round(peak_kb / 1024, 1)}


def measured(cmd: list[str]) -> dict:
    """`measure` in a fresh interpreter, so the peak belongs to this command alone."""
    out = subprocess.run([sys.executable, __file__, "--measure", "--", *cmd],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def size_gb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e9, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("presets", nargs="*", default=["tiny", "default"], choices=["tiny", "default", "full"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="work in this folder and keep the outputs (default: a temporary folder)")
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    if "--measure" in sys.argv:
        cmd = sys.argv[sys.argv.index("--") + 1:]
        print(json.dumps(measure(cmd)))
        return
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_data."))
    work.mkdir(parents=True, exist_ok=True)
    avvp = [sys.executable, "-m", "avvp"]
    print(f"{'preset':8} {'step':6} {'seconds':>8} {'peak MB':>8} {'disk GB':>8}")
    try:
        for preset in args.presets:
            data, packed = work / f"{preset}-s{args.seed}", work / f"{preset}-s{args.seed}-packed"
            steps = [("synth", [*avvp, "synth", "--preset", preset, "--seed", str(args.seed), "--out", str(data)],
                      data),
                     ("pack", [*avvp, "pack", "--data", str(data), "--out", str(packed)], packed)]
            total = 0.0
            for step, cmd, out in steps:
                r = measured(cmd)
                if r["rc"] != 0:
                    sys.exit(f"{step} {preset} failed (exit {r['rc']}): {' '.join(cmd)}")
                total += r["seconds"]
                print(f"{preset:8} {step:6} {r['seconds']:8.2f} {r['peak_mb']:8.1f} {size_gb(out):8.2f}", flush=True)
            print(f"{preset:8} {'total':6} {total:8.2f}", flush=True)
            if not args.keep:
                shutil.rmtree(data), shutil.rmtree(packed)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
