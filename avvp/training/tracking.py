"""What a run records beside its numbers: the environment it ran in, and (optionally) TensorBoard scalars.

`environment(device)` goes into run.json (`environment`): the versions and hardware behind every number, so a
table can say when two rows it compares were trained on different PyTorch builds or machines (docs/outputs.md).

`tensorboard(root, slug, seed)` is the `--tensorboard DIR` switch of `avvp train`: each finished epoch's log row
(losses, learning rate, validation numbers, seconds) as TensorBoard scalars under DIR/<slug>/seed<S>, step =
epoch. It only reads the row the loop already made, so a run with it on gives the same metrics and files as one
with it off. tensorboard is an optional extra (`pip install -e '.[tracking]'`), imported only when it is on.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from avvp import paths
from avvp.errors import AvvpError

# ------------------------------------------------------------------------------------------ environment

def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux; platform's answer elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_cores() -> int:
    """The cores this process may run on (its affinity), which is what torch's threads share."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def device_name(device: str) -> str:
    """'NVIDIA H100 80GB HBM3' for a CUDA device; 'AMD EPYC 7B13 (2 cores)' for the CPU."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_name()} ({cpu_cores()} cores)"


def environment(device: str) -> dict:
    """Versions and hardware of this process, for run.json. `deterministic` is whether the run trains with
    deterministic kernels: avvp.training.train.fit switches them on for every CUDA run (graphs.deterministic),
    CPU runs use torch's default unless the caller switched them on. `cpu_capability` is the instruction set
    torch's CPU kernels dispatch to (AVX2, AVX512, ...): the same code and data give other fp32 numbers on an AVX2
    machine than on an AVX512 one, so it is part of "the machine kind" training is deterministic for."""
    cuda = torch.device(device).type == "cuda"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": None if cudnn is None else str(cudnn), "device_name": device_name(device),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": torch.get_num_threads(),
            "deterministic": bool(cuda or torch.are_deterministic_algorithms_enabled())}


# ------------------------------------------------------------------------------------------ tensorboard

def tensorboard_dir(root: str | Path, slug: str, seed: int) -> Path:
    """Where one run's event files go: <root>/<slug>/seed<S> (results/tensorboard/... in the workflow)."""
    return Path(root) / slug / paths.seed_name(seed)


def tag(key: str) -> str | None:
    """The TensorBoard tag of a log.csv column: loss_bce -> loss/bce, val_segment_type_av ->
    val/segment/type_av, lr -> lr, seconds -> time/seconds; None for the step itself (epoch)."""
    if key == "epoch":
        return None
    if key.startswith("loss_"):
        return f"loss/{key[5:]}"
    if key.endswith("seconds"):
        return f"time/{key}"
    for split in ("val", "test"):
        for level in ("segment", "event"):
            if key.startswith(f"{split}_{level}_"):
                return f"{split}/{level}/{key[len(split) + len(level) + 2:]}"
    return key


class TensorBoard:
    """Writes each epoch's log row as scalars. The writer opens on the first row with purge_step = that epoch,
    so a resumed run hides whatever a killed process had logged from that epoch on, and the event files end
    with exactly one value per epoch."""

    def __init__(self, folder: Path):
        self.folder, self.writer = folder, None

    def __call__(self, row: dict) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.folder), purge_step=row["epoch"])
        losses = [v for k, v in row.items() if k.startswith("loss_")]
        for key, value in row.items():
            name = tag(key)
            if name is not None and isinstance(value, (int, float)):
                self.writer.add_scalar(name, value, global_step=row["epoch"])
        if losses:
            self.writer.add_scalar("loss/total", sum(losses), global_step=row["epoch"])
        self.writer.flush()  # a kill loses at most the epoch being trained

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Tracking:
    """The per-epoch hook of `avvp train --tensorboard ROOT`, as a context: `with Tracking(...) as on_epoch`
    gives the hook (None when ROOT is None: tracking off) and closes its writer at the end. Made before anything
    is written, so a missing tensorboard package stops the run with one line and nothing on disk."""

    def __init__(self, root: str | Path | None, slug: str, seed: int):
        self.hook = None
        if root is None:
            return
        try:
            import torch.utils.tensorboard  # noqa: F401  (needs the tensorboard package)
        except ImportError:
            raise AvvpError("--tensorboard: the tensorboard package is not installed "
                            "(pip install -e '.[tracking]', or pip install tensorboard)") from None
        self.hook = TensorBoard(tensorboard_dir(root, slug, seed))

    def __enter__(self):
        return self.hook

    def __exit__(self, *exc) -> None:
        if self.hook is not None:
            self.hook.close()
