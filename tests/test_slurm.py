"""A two-job slice of the real workflow (synthesize -> pack of the tiny preset) through a real SLURM scheduler.

.ci/slurm-start brings up a one-machine cluster (munged, slurmctld, slurmd; installing slurm-wlm with apt when it
is missing). Snakemake then runs with profiles/slurm, so each job is an sbatch submission. The test is skipped,
with the reason printed, only where SLURM cannot be started here (not root, no apt, daemons failing).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_workflow import REPO, copy_workflow, snakemake


@pytest.fixture(scope="module")
def slurm():
    proc = subprocess.run(["bash", str(REPO / ".ci/slurm-start")], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        reason = (proc.stderr.strip() or proc.stdout.strip() or "no message").splitlines()[-1]
        print(f"SLURM unavailable: {reason}", file=sys.stderr)
        pytest.skip(f"SLURM cannot start on this machine: {reason}")
    return proc.stdout.strip()


def slurm_state(jobid: str) -> str:
    """The job's state as the controller reports it (finished jobs stay listed for MinJobAge)."""
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%T", "--jobs", jobid],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def test_tiny_data_slice_runs_as_slurm_jobs(slurm, tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    proc = snakemake(
        wd, "--workflow-profile", str(wd / "profiles/slurm"),
        # This cluster has no accounting database (no sacct): job states come from squeue (MinJobAge 300 s).
        "--slurm-status-command", "squeue",
        # Poll every second rather than the profile's 10 s: the two jobs last seconds.
        "--seconds-between-status-checks", "1", "--slurm-init-seconds-before-status-checks", "1",
        targets=["data/packed/tiny-s0/manifest.json"], config=["dataset={preset: tiny}"], timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out

    # Both jobs were submitted with sbatch and completed in SLURM.
    submitted = dict(re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", out))
    assert len(submitted) == 2, out
    rules = set()
    for jobid, log in submitted.items():
        assert slurm_state(jobid) == "COMPLETED", (jobid, slurm_state(jobid))
        text = Path(log).read_text()         # the plugin's per-job SLURM log (kept by the profile)
        rules |= set(re.findall(r"^rule (\w+):", text, re.M))
        assert "Finished jobid" in text, text
    assert rules == {"synthesize", "pack"}
    assert {Path(log).parts[-3] for log in submitted.values()} == {"rule_synthesize", "rule_pack"}

    # The outputs: the tiny synthetic dataset and its packed arrays, with each job's log and benchmark.
    manifest = json.loads((wd / "data/packed/tiny-s0/manifest.json").read_text())
    assert manifest["annotation_version"] == "synthetic"
    assert (wd / "data/synthetic/tiny-s0/AVVP_train.csv").exists()
    assert (wd / "data/packed/tiny-s0/train/audio.npy").exists()
    assert "packed" in (wd / "results/logs/pack/tiny-s0.log").read_text()
    assert (wd / "results/benchmarks/synthesize/tiny-s0.tsv").exists()
    shutil.rmtree(wd / "data")
