"""Seconds from `avvp` to its one-line error for each typo of a sheet (issue 14: under 2 s, before anything runs).

    .venv/bin/python bench/bench_sheet_errors.py

Each case writes a copy of config/variants.yaml or config/tables.yaml with one typo, runs the command a user
would (`avvp train` / `avvp table`) as a fresh process, and prints its exit status, wall time and stderr line.
The sheets are checked before the stage's module (and torch) is imported, so the time is Python's start plus
the sheets' validation.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
AVVP = Path(sys.executable).with_name("avvp")

VARIANTS = [
    ("gating: hann", lambda d: d["variants"]["MA"].update(gating="hann")),
    ("labels: wek", lambda d: d["variants"]["MA"].update(labels="wek")),
    ("losses: [cmss]", lambda d: d["variants"]["HAN + Ours"].update(losses=["cmss"])),
    ("head: cmc0", lambda d: d["variants"]["HAN + Ours"]["model"].update(head="cmc0")),
    ("backbone: hann", lambda d: d["variants"]["HAN"]["model"].update(backbone="hann")),
    ("recipe: ourz", lambda d: d["variants"]["HAN + Ours"].update(recipe="ourz")),
    ("an unknown key", lambda d: d["variants"]["HAN"].update(gatng="ma")),
]
TABLES = [
    ("a row's unknown variant", lambda d: d["tables"]["table1"]["rows"].append({"variant": "HAN + Magic"})),
    ("a row's unknown base", lambda d: d["tables"]["table1"]["rows"][2].update(base="AVSDM")),
]


def case(folder: Path, sheet: str, edit) -> list[str]:
    """The command of one typo, its sheet written into `folder`."""
    data = yaml.safe_load((REPO / "config" / f"{sheet}.yaml").read_text())
    edit(data)
    bad = folder / f"{sheet}.yaml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    if sheet == "variants":
        return [str(AVVP), "train", "--variant", "HAN", "--data", str(folder / "data"), "--out",
                str(folder / "run"), "--variants-file", str(bad)]
    return [str(AVVP), "table", "--table", "table1", "--tables", str(bad), "--out", str(folder / "t" / "x.md")]


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, cwd=REPO)
    return time.perf_counter() - t0


def main() -> None:
    # What this machine's load costs any command: a bare Python, and `avvp --help`.
    print(f"reference: python -c pass {wall([sys.executable, '-c', 'pass']):.2f} s, "
          f"avvp --help {wall([str(AVVP), '--help']):.2f} s\n")
    print("| typo | exit | seconds | stderr |\n|---|---|---|---|")
    for sheet, cases in (("variants", VARIANTS), ("tables", TABLES)):
        for name, edit in cases:
            with tempfile.TemporaryDirectory() as tmp:
                cmd = case(Path(tmp), sheet, edit)
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
                seconds = time.perf_counter() - t0
                written = sorted(p.name for p in Path(tmp).iterdir() if p.suffix != ".yaml")
            line = proc.stderr.strip().replace(tmp, "TMP")
            assert proc.returncode == 1 and "\n" not in line and not written, (name, proc.stderr, written)
            print(f"| {name} | {proc.returncode} | {seconds:.2f} | {line} |")


if __name__ == "__main__":
    main()
