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


def recurrent(lstm: torch.nn.LSTM, x: torch.Tensor, state=None):
    """`lstm(x, state)`, in fp32 on CPU whatever the autocast.

    CPU autocast runs nn.LSTM in bf16 through a oneDNN primitive that exists only on CPUs with AVX512: on an
    AVX2-only CPU it fails ("could not create a primitive descriptor for the LSTM forward propagation primitive"),
    so AVE and AVSDN could not train in bf16 there. On CPU the recurrent layers therefore always compute in fp32
    (the rest of the row keeps bf16), the same function on every CPU; on CUDA autocast's own rule applies.
    """
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            state = None if state is None else tuple(s.float() for s in state)
            return lstm(x.float(), state)
    return lstm(x, state)
