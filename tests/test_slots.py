"""GPU slots (avvp/training/slots.py) on a faked GPU list: concurrent jobs spread over GPUs, K jobs share one, a killed
job's slot comes back, SLURM's assignment is taken as is. Each job is a real process holding its claim until
the test closes its stdin, so the locks are the kernel's, as in a workflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from avvp.errors import AvvpError
from avvp.training import slots

JOB = ("import json, sys; from avvp.training import slots; c = slots.claim(); "
       "print(json.dumps({'gpu': c.gpu, 'slot': c.slot, 'source': c.source}), flush=True); sys.stdin.read()")


def start_job(env: dict) -> tuple[subprocess.Popen, dict | None]:
    """A process that claims a slot and holds it; with the claim it printed (None when it failed)."""
    proc = subprocess.Popen([sys.executable, "-c", JOB], env={**os.environ, **env}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, json.loads(line) if line else None


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.stdin.close()
        p.wait(timeout=30)


@pytest.fixture
def env(tmp_path):
    clean = {"AVVP_GPU_LOCKDIR": str(tmp_path / "locks"), "AVVP_GPU_WAIT": "0", "SLURM_JOB_ID": "",
             "CUDA_VISIBLE_DEVICES": ""}
    return clean


def test_two_jobs_one_slot_each_get_different_gpus(env):
    env = {**env, "AVVP_GPUS": "0,1", "AVVP_GPU_SLOTS": "1"}
    a, claim_a = start_job(env)
    b, claim_b = start_job(env)
    try:
        assert claim_a is not None and claim_b is not None, b.stderr.read()
        assert {claim_a["gpu"], claim_b["gpu"]} == {"0", "1"}
        assert claim_a["source"] == claim_b["source"] == "slot"
        c, claim_c = start_job(env)  # both GPUs' single slots are held: a third job fails (AVVP_GPU_WAIT=0)
        stop(c)
        assert claim_c is None and c.returncode != 0
        assert "all 2 GPU(s) x 1 slot(s) are held" in c.stderr.read()
    finally:
        stop(a, b)


def test_two_slots_on_one_gpu_both_run(env):
    env = {**env, "AVVP_GPUS": "0", "AVVP_GPU_SLOTS": "2"}
    a, claim_a = start_job(env)
    b, claim_b = start_job(env)
    try:
        assert claim_a and claim_b, b.stderr.read()
        assert claim_a["gpu"] == claim_b["gpu"] == "0"
        assert {claim_a["slot"], claim_b["slot"]} == {0, 1}
    finally:
        stop(a, b)


def test_jobs_spread_to_the_least_loaded_gpu(env):
    env = {**env, "AVVP_GPUS": "0,1", "AVVP_GPU_SLOTS": "2"}
    procs, claims = zip(*(start_job(env) for _ in range(4)))
    try:
        gpus = [c["gpu"] for c in claims]
        assert gpus[:2] in (["0", "1"], ["1", "0"])  # the second job goes to the empty GPU, not slot 1 of GPU 0
        assert sorted(gpus) == ["0", "0", "1", "1"]
    finally:
        stop(*procs)


def test_a_killed_jobs_slot_is_free_again(env):
    env = {**env, "AVVP_GPUS": "0", "AVVP_GPU_SLOTS": "1"}
    a, claim_a = start_job(env)
    assert claim_a == {"gpu": "0", "slot": 0, "source": "slot"}
    blocked, claim_blocked = start_job(env)
    stop(blocked)
    assert claim_blocked is None  # held by a
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=30)
    b, claim_b = start_job(env)
    try:
        assert claim_b == {"gpu": "0", "slot": 0, "source": "slot"}, b.stderr.read()
    finally:
        stop(b)


def test_slurm_assigned_device_claims_nothing(env, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    env = {**env, "SLURM_JOB_ID": "123", "CUDA_VISIBLE_DEVICES": "3", "AVVP_GPUS": "0,1"}
    c = slots.claim(env)
    assert c == slots.Claim("3", None, "slurm")
    assert not (tmp_path / "locks").exists()  # no lock folder, no lock files


def test_bad_settings_are_one_line_errors(env):
    with pytest.raises(AvvpError, match="AVVP_GPU_SLOTS='two'"):
        slots.claim({**env, "AVVP_GPU_SLOTS": "two", "AVVP_GPUS": "0"})
    with pytest.raises(AvvpError, match="AVVP_GPU_WAIT='soon'"):
        slots.claim({**env, "AVVP_GPU_WAIT": "soon", "AVVP_GPUS": "0"})


# --- issue 15 defect 4: SLURM allocations of several GPUs, GPU numbering, an empty CUDA_VISIBLE_DEVICES, a private /tmp
def fake_nvidia_smi(tmp_path, indices=("0", "1")) -> dict:
    """PATH with an `nvidia-smi` that lists `indices` (what a 2-GPU machine's would print)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + "".join(f"echo {i}\n" for i in indices))
    smi.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_slurm_allocation_of_several_gpus_is_claimed_over(env):
    """`salloc --gpus=4`, then the local profiles/gpu run: SLURM set CUDA_VISIBLE_DEVICES to all four, so the
    jobs must spread over them rather than all run on GPU 0."""
    env = {**env, "SLURM_JOB_ID": "123", "CUDA_VISIBLE_DEVICES": "0,1,2,3", "AVVP_GPU_SLOTS": "1"}
    procs, claims = zip(*(start_job(env) for _ in range(4)))
    try:
        assert all(claims), [p.stderr.read() for p in procs]
        assert sorted(c["gpu"] for c in claims) == ["0", "1", "2", "3"]
        assert {c["source"] for c in claims} == {"slot"}
    finally:
        stop(*procs)


def test_an_empty_cuda_visible_devices_means_no_gpu(env, tmp_path, monkeypatch):
    """CUDA_VISIBLE_DEVICES="" hides every GPU (CUDA sees none); it does not mean "unset, use nvidia-smi's"."""
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path)["PATH"])
    with pytest.raises(AvvpError, match="CUDA_VISIBLE_DEVICES is set but empty"):
        slots.claim(env)  # no AVVP_GPUS


def test_nvidia_smis_numbering_is_the_one_cuda_sees(env, tmp_path):
    """nvidia-smi numbers GPUs by PCI bus, CUDA by default fastest first: a claimed index must mean one GPU."""
    job = ("import json, os, sys; from avvp.training import slots; c = slots.claim(); "
           "print(json.dumps([c.gpu, os.environ.get('CUDA_DEVICE_ORDER')]), flush=True)")
    clean = {k: v for k, v in os.environ.items() if k not in ("AVVP_GPUS", "CUDA_VISIBLE_DEVICES",
                                                               "CUDA_DEVICE_ORDER")}
    env = {**clean, **{k: v for k, v in env.items() if k != "CUDA_VISIBLE_DEVICES"}, **fake_nvidia_smi(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", job], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["0", "PCI_BUS_ID"]


def test_the_default_lock_folder_is_not_a_jobs_private_tmp(monkeypatch, tmp_path):
    """SLURM (and containers) give each job its own TMPDIR or /tmp: locks there hide the jobs from each other."""
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path / "job123"))
    (tmp_path / "job123").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    env = {k: v for k, v in os.environ.items() if k != "AVVP_GPU_LOCKDIR"}
    folder = slots.lock_folder(env)
    assert not str(folder).startswith(str(tmp_path)) and not str(folder).startswith("/tmp/")
