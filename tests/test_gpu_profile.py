"""profiles/gpu plans the workflow on CUDA in bf16 with a `gpu` resource per GPU job (a dry run needs no GPU).

Snakemake runs in a copy of the workflow (tests/test_workflow.py's helpers), so data/ and results/ are untouched.
Table 2 with the shipped three seeds: its rows x 3 seeds trainings, each asking for one `gpu` slot, with the
config's K exported as AVVP_GPU_SLOTS and the graphed step on."""

from __future__ import annotations

import re

from test_workflow import copy_workflow, snakemake


def test_gpu_profile_plans_every_training_on_cuda(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    proc = snakemake(wf, "--workflow-profile", str(wf / "profiles/gpu"), "--dry-run", targets=["results/table2.md"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Using workflow specific profile profiles/gpu" in out or "profiles/gpu" in out
    # K = 4 jobs per GPU reach avvp/training/slots.py through the environment; every step is graphed.
    trains = re.findall(r"^Shell command: AVVP_GPU_SLOTS=4 avvp train .*$", out, flags=re.M)
    # Every training (Table 2: its rows x 3 seeds, at least the paper's 11 rows) has the prefix.
    assert len(trains) == len(re.findall(r"^Shell command: .*avvp train .*$", out, flags=re.M)) >= 33
    assert all("--device cuda --precision bf16" in cmd and "--graphs on" in cmd for cmd in trains)
    # MA's refinement: its step 1 a training like the others (above), its step 2 a pass on the GPU per seed.
    assert len(re.findall(r"^Shell command: AVVP_GPU_SLOTS=4 avvp refine .*--device cuda", out, flags=re.M)) == 3
    assert len(re.findall(r"^Shell command: AVVP_GPU_SLOTS=4 avvp evaluate ", out, flags=re.M)) >= 33
    assert out.count("gpu=1,") >= len(trains)  # every training (and refinement, evaluation) job holds one GPU slot
