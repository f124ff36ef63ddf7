"""The README's commands in the README's order on the `tiny` preset: Table 2, then the HTML report of what exists
(each table as a page with its training curves), then results/runs.csv read back with pandas, then the report
again with it. Snakemake runs in a copy of the workflow in tmp (tests/test_workflow.py's way)."""

from __future__ import annotations

import base64
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from avvp import variants
from avvp.registry import GATINGS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_kill import copy_workflow  # noqa: E402

README = (REPO / "README.md").read_text()                              # the first command
TARGETS = (REPO / "docs" / "getting-started.md").read_text()           # the report's and runs.csv's commands
TINY = ["dataset={preset: tiny}", "seeds=[0]", "epochs=1"]


def readme_command(pattern: str, text: str = README) -> list[str]:
    """The first command matching `pattern` in `text` (the README, or docs/getting-started.md's targets), as
    arguments after `snakemake`."""
    command = re.search(pattern, text).group(1)
    return shlex.split(command)[1:]


def snakemake(wd: Path, args: list[str]) -> subprocess.CompletedProcess:
    """`snakemake ARGS` as the README gives them (the last one the target; 2 cores here), in the user's config:
    the tiny preset."""
    options = ["--cores", "2"] + [a for a in args[:-1] if a not in ("--cores", "4")]
    cmd = [sys.executable, "-m", "snakemake", *options, "--config", *TINY, "--", args[-1]]
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=1500)


def _embedded(report: str, path: Path) -> bool:
    return base64.b64encode(path.read_bytes()).decode("ascii") in report


def test_readme_commands_in_order_on_tiny(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    first = readme_command(r"\.venv/bin/(snakemake --cores 4 results/table2\.md)")
    assert first[-1] == "results/table2.md"
    proc = snakemake(wd, first)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report_cmd = readme_command(r"`(snakemake --report results/report\.html[^`]*)`", TARGETS)
    proc = snakemake(wd, report_cmd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = (wd / "results/report.html").read_text()
    page = wd / "results/table2.html"
    assert _embedded(report, page) and _embedded(report, wd / "results/figures/curves_table2.png")
    text = page.read_text()
    assert "<table" in text and "<td>HAN + CM-S</td>" in text and "data:image/png;base64," in text
    assert "- Environment: python " in (wd / "results/table2.md").read_text()
    # Then runs.csv, from the runs that exist: Table 2's 13 rows x 1 seed x 2 splits x every registered gating.
    runs_cmd = readme_command(r"`(snakemake --cores 4 results/runs\.csv)`", TARGETS)
    proc = snakemake(wd, runs_cmd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["variant"] for r in yaml.safe_load((REPO / "config/tables.yaml").read_text())["tables"]["table2"]["rows"]}
    table = pd.read_csv(wd / "results/runs.csv")
    rows |= {"MA step 1"}        # the run MA's refinement was made from is a run like any other
    assert len(table) == len(rows) * 1 * 2 * len(GATINGS.names()) and set(table["row"]) == rows
    assert not table.drop(columns=["losses", "env_cuda", "env_cudnn"]).isna().any().any()
    plain = {r for r in rows if not variants.get(r).losses}      # no extra loss: an empty `losses`
    assert (table["losses"].isna() == table["row"].isin(plain)).all()
    proc = snakemake(wd, report_cmd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _embedded((wd / "results/report.html").read_text(), wd / "results/runs.csv")
