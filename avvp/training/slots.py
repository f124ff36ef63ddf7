"""GPU slots: which GPU a local CUDA job runs on, when several jobs share the GPUs of one machine.

Snakemake's local executor counts a `gpu` resource but does not tell a job which GPU it got (snakemake issue
#281). So each CUDA job claims one of N GPUs x K slots itself: slot k of GPU g is the file
`<lockdir>/gpu<g>.slot<k>.lock`, held with `fcntl.flock` for the life of the process. The kernel drops the lock
when the process ends in any way (exit, crash, SIGKILL), so a dead job's slot is free again without cleanup.
A claim picks the least loaded GPU (fewest held slots; the first listed on a tie), so jobs spread over all GPUs.
The claimed GPU becomes the process's only visible device (CUDA_VISIBLE_DEVICES, set before CUDA initialises;
torch reads it at its first CUDA call), so `cuda` in the job means that GPU.

Settings (environment, so every `avvp` subcommand and the workflow share them):
    AVVP_GPU_SLOTS     K, jobs per GPU (default 1); 0 turns claiming off (CUDA_VISIBLE_DEVICES used as it is)
    AVVP_GPUS          the GPU list, comma-separated, in nvidia-smi's numbering (default: CUDA_VISIBLE_DEVICES if
                       set, else every GPU nvidia-smi lists). CUDA_VISIBLE_DEVICES set but empty means no GPU.
    AVVP_GPU_LOCKDIR   the lock folder (default: /var/tmp/avvp-gpu-slots-<uid>, local to the machine: flock on a
                       network file system is not reliable, and slots are per machine anyway)
    AVVP_GPU_WAIT      seconds to wait for a free slot (default: forever); 0 fails at once with one line
Numbering: nvidia-smi numbers GPUs by PCI bus, CUDA by default fastest first, so a claim from nvidia-smi's list or
AVVP_GPUS also sets CUDA_DEVICE_ORDER=PCI_BUS_ID (a claim from CUDA_VISIBLE_DEVICES keeps the order it was
written in). Under SLURM (SLURM_JOB_ID set) a job whose allocation shows exactly one GPU uses it and claims
nothing; an allocation of several (`salloc --gpus=4`, then a local workflow run) is claimed over like a machine.
The lock folder must be the same for every job of the machine: not TMPDIR or /tmp, which SLURM's job_container
/tmpfs and containers make private per job (then every job would find every slot free).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from avvp.errors import AvvpError

_HELD: list[int] = []  # open lock files: closing one would release its slot, so they live as long as the process


@dataclass(frozen=True)
class Claim:
    gpu: str                   # the GPU's id as listed (an index or a UUID), now CUDA_VISIBLE_DEVICES
    slot: int | None           # None: assigned by SLURM (or claiming off), no lock held
    source: str                # slot | slurm | off


def slots_per_gpu(env=os.environ) -> int:
    raw = env.get("AVVP_GPU_SLOTS", "1")
    try:
        k = int(raw)
    except ValueError:
        raise AvvpError(f"AVVP_GPU_SLOTS={raw!r}: must be an integer (jobs per GPU; 0 = no claiming)") from None
    if k < 0:
        raise AvvpError(f"AVVP_GPU_SLOTS={raw!r}: must be 0 or more")
    return k


def _split(raw: str) -> list[str]:
    return [g.strip() for g in raw.split(",") if g.strip()]


def list_gpus(env=os.environ) -> list[str]:
    """The GPUs jobs may claim: AVVP_GPUS, else CUDA_VISIBLE_DEVICES, else what nvidia-smi lists."""
    if env.get("AVVP_GPUS", "").strip():
        return _split(env["AVVP_GPUS"])
    if "CUDA_VISIBLE_DEVICES" in env:
        if not _split(env["CUDA_VISIBLE_DEVICES"]):
            raise AvvpError("device cuda: CUDA_VISIBLE_DEVICES is set but empty, so CUDA sees no GPU (unset it to "
                            "use every GPU nvidia-smi lists, or name them in AVVP_GPUS)")
        return _split(env["CUDA_VISIBLE_DEVICES"])
    # nvidia-smi, not torch: asking torch would initialise CUDA before CUDA_VISIBLE_DEVICES is set.
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    gpus = [line.strip() for line in out.splitlines() if line.strip()]
    if not gpus:
        raise AvvpError("device cuda: no GPU found (nvidia-smi lists none; set AVVP_GPUS or CUDA_VISIBLE_DEVICES)")
    return gpus


def lock_folder(env=os.environ) -> Path:
    """AVVP_GPU_LOCKDIR, else /var/tmp/avvp-gpu-slots-<uid>: shared by every job of the machine, where TMPDIR and
    /tmp may be private per job (SLURM's job_container/tmpfs, containers); /tmp only without /var/tmp."""
    base = Path("/var/tmp") if os.access("/var/tmp", os.W_OK) else Path("/tmp")
    path = Path(env.get("AVVP_GPU_LOCKDIR") or base / f"avvp-gpu-slots-{os.getuid()}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AvvpError(f"{path}: cannot create the GPU slot lock folder ({e.strerror})") from None
    return path


def _try_lock(path: Path) -> int | None:
    """An open, exclusively locked file descriptor of `path`, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _take_least_loaded(lockdir: Path, gpus: list[str], k: int) -> tuple[str, int, int] | None:
    """(gpu, slot, fd) of a free slot on the least loaded GPU, or None when every slot is held.

    Runs under the folder's claim lock, so probing (lock, then unlock the slots not taken) races no other claim.
    """
    free: dict[str, list[tuple[int, int]]] = {}
    for g in gpus:
        free[g] = [(s, fd) for s in range(k) if (fd := _try_lock(lockdir / f"gpu{g}.slot{s}.lock")) is not None]
    best = max(gpus, key=lambda g: len(free[g]))  # most free = least loaded; max keeps the first on a tie
    taken = free[best][0] if free[best] else None
    for pairs in free.values():
        for s, fd in pairs:
            if (s, fd) != taken:
                os.close(fd)  # closing releases the probe's lock
    return (best, *taken) if taken else None


def _wait_seconds(env) -> float | None:
    raw = env.get("AVVP_GPU_WAIT")
    try:
        return None if raw in (None, "") else float(raw)
    except ValueError:
        raise AvvpError(f"AVVP_GPU_WAIT={raw!r}: must be a number of seconds") from None


def claim(env=os.environ, poll: float = 0.5) -> Claim:
    """Claim a GPU slot for this process (or take SLURM's GPU) and make it the only visible CUDA device."""
    visible = _split(env.get("CUDA_VISIBLE_DEVICES", ""))
    if env.get("SLURM_JOB_ID") and len(visible) == 1:
        return Claim(visible[0], None, "slurm")  # the scheduler's one GPU: nothing to share
    k = slots_per_gpu(env)
    if k == 0:
        return Claim(env.get("CUDA_VISIBLE_DEVICES", ""), None, "off")
    gpus, lockdir, wait = list_gpus(env), lock_folder(env), _wait_seconds(env)
    smi_numbering = bool(env.get("AVVP_GPUS", "").strip()) or "CUDA_VISIBLE_DEVICES" not in env
    t0, told = time.monotonic(), False
    while True:
        with open(lockdir / "claim.lock", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)  # one claim at a time on this machine; released on close
            got = _take_least_loaded(lockdir, gpus, k)
        if got is not None:
            gpu, slot, fd = got
            _HELD.append(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}\n".encode())  # who holds it, for a person looking at the folder
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            if smi_numbering:  # the index is nvidia-smi's (PCI bus order); CUDA's default order is fastest first
                os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
            print(f"GPU {gpu}, slot {slot} of {k} ({lockdir})", file=sys.stderr, flush=True)
            return Claim(gpu, slot, "slot")
        if wait is not None and time.monotonic() - t0 >= wait:
            raise AvvpError(f"{lockdir}: all {len(gpus)} GPU(s) x {k} slot(s) are held by other jobs "
                            f"(waited {wait:g} s; AVVP_GPU_WAIT)")
        if not told:
            print(f"waiting for a free GPU slot ({len(gpus)} GPU(s) x {k}) in {lockdir}", file=sys.stderr, flush=True)
            told = True
        time.sleep(poll)
