"""profiles/gpu plans the workflow on CUDA in bf16 with a `gpu` resource per GPU job (a dry run needs no GPU).

Snakemake runs in a copy of the workflow (tests/test_workflow.py's helpers), so data/ and results/ are untouched.
Table 2 with the shipped three seeds: 11 rows x 3 seeds trainings, each asking for one `gpu` slot."""

from __future__ import annotations

import re

from test_workflow import copy_workflow, snakemake


def test_gpu_profile_plans_every_training_on_cuda(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    proc = snakemake(wf, "--workflow-profile", str(wf / "profiles/gpu"), "--dry-run", targets=["results/table2.md"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Using workflow specific profile profiles/gpu" in out or "profiles/gpu" in out
    trains = re.findall(r"^Shell command: avvp train .*$", out, flags=re.M)
    assert len(trains) == 33
    assert all("--device cuda --precision bf16" in cmd for cmd in trains)
    assert out.count("gpu=1,") >= 33  # every training (and refinement, evaluation) job holds one GPU slot
