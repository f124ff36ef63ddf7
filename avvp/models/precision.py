"""Numeric precision of a forward pass: bf16 autocast or plain fp32 (training and evaluation both use it)."""

from __future__ import annotations

import contextlib

import torch


def autocast(precision: str, device: str):
    """bf16 autocast for the forward pass (AVX512-BF16/AMX on CPUs, tensor cores on GPUs); fp32 is a no-op.

    On CUDA the cast-weight cache is off: a training step may be captured as a CUDA graph (avvp.training.graphs), and
    torch.cuda.graph needs autocast's cache off (a cached cast made at capture would be freed and reused).
    The cache only saves re-casting a weight used twice in one forward; what that costs: not measured.
    """
    if precision == "bf16":
        device_type = torch.device(device).type
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16, cache_enabled=device_type != "cuda")
    return contextlib.nullcontext()
