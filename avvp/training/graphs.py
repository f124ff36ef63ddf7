"""The training step as CUDA graphs: one launch per step instead of hundreds of small kernels.

A HAN-sized step on a GPU is launch-bound: eager PyTorch spends its time queueing kernels that each run for
microseconds. `StepRunner` captures the whole step (forward, backward, fused optimizer) once with
`torch.cuda.graph` and afterwards replays it: each step is a copy of the batch into static input buffers plus
`graph.replay()`.

The step is any callable `step(batch) -> terms` (a dict of detached loss tensors) that starts with
`optim.zero_grad(set_to_none=True)` and ends with `optim.step()`; `make_step` builds one from
`loss_fn(model, batch) -> (loss, terms)`. For it to be capturable it must not wait on the host (no `.item()`,
numpy or Python branches on tensor values) and draw randomness only from device-side torch RNG (dropout,
`torch.rand(..., device=...)`), which torch.cuda.graph makes replay-safe; a host generator's draw would be frozen
into the graph. The optimizer must keep its state on the device with the learning rate as a device tensor
(`capturable_adam`): schedulers write a tensor lr in place (`fill_`), so the captured step sees each new rate.

Which graph: a captured graph has fixed shapes and fixed Python branches, so graphs are keyed by the batch's
shapes and by `key`, a hashable the caller passes naming every Python-level choice the step makes that is not in
the batch (for the trainer: label smoothing on or off, CM-S on or off, which doubles the batch). The last partial
batch of an epoch and CM-S's doubled batch therefore get graphs of their own; past `max_graphs` distinct keys a
step runs eagerly (each capture costs memory and a few warm-up steps; a run normally needs 2-4).

Warm-up steps (needed before capture so that lazily created optimizer state and library workspaces exist) would
change the weights, so the model, optimizer state and RNGs are restored after them: the graphed path computes
exactly the function of the eager one. On CPU (and with `graphs=False`) the same static-buffer path runs without
capture ("graph-shaped"), which is what the CPU tests compare with the plain eager step.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, Hashable, Sequence

import torch

Tensors = Sequence[torch.Tensor]  # a step's inputs in a fixed order (losses.Batch is the named batch)
Step = Callable[[Tensors], dict]


def capturable_adam(params, lr: float, device: str | torch.device, **kw) -> torch.optim.Adam:
    """Fused Adam with its learning rate as a tensor on `device`, so a captured step reads the current rate."""
    return torch.optim.Adam(params, lr=torch.tensor(float(lr), device=device), fused=True, **kw)


def lr_to_device(optim: torch.optim.Optimizer, device: str | torch.device) -> None:
    """Make every group's lr a device tensor again (after `load_state_dict`, which installs the saved value)."""
    for group in optim.param_groups:
        group["lr"] = torch.as_tensor(group["lr"], dtype=torch.float32).to(device)


def make_step(model: torch.nn.Module, optim: torch.optim.Optimizer,
              loss_fn: Callable[[torch.nn.Module, Tensors], tuple]) -> Step:
    """A training step of `loss_fn(model, batch) -> (loss, terms)`: zero grads, forward, backward, optimizer."""
    def step(batch: Tensors) -> dict:
        optim.zero_grad(set_to_none=True)  # grads are then (re)allocated inside a capture, in its memory pool
        loss, terms = loss_fn(model, batch)
        loss.backward()
        optim.step()
        return terms
    return step


class _Snapshot:
    """Model tensors, optimizer state and RNG states, to undo warm-up steps in place (graphs keep addresses)."""

    def __init__(self, model, optim, generators: Sequence[torch.Generator]):
        self.tensors = [(t, t.detach().clone()) for t in [*model.parameters(), *model.buffers()]]
        self.state = {id(t): t.detach().clone() for s in optim.state.values() for t in s.values()
                      if torch.is_tensor(t)}
        self.optim = optim
        self.generators = [(g, g.get_state()) for g in generators]
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    @torch.no_grad()
    def restore(self) -> None:
        for t, saved in self.tensors:
            t.copy_(saved)
        for s in self.optim.state.values():
            for t in s.values():
                if torch.is_tensor(t):
                    # State the warm-up created is zeroed: Adam creates its moments and step count as zeros.
                    t.copy_(self.state[id(t)]) if id(t) in self.state else t.zero_()
        for g, state in self.generators:
            g.set_state(state)
        torch.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


class StepRunner:
    """Runs training steps as CUDA graphs (one per batch shape and `key`), graph-shaped on CPU, or eagerly.

    mode: "graph" captures on CUDA and falls back to graph-shaped elsewhere; "static" is graph-shaped everywhere
    (the CPU test path); "eager" calls the step on the batch as given (the switch that turns graphs off).
    Terms returned by a graphed step are its static outputs: read or accumulate them before the next call.
    """

    def __init__(self, model: torch.nn.Module, optim: torch.optim.Optimizer, mode: str = "graph",
                 warmup: int = 3, max_graphs: int = 4, generators: Sequence[torch.Generator] = ()):
        if mode not in ("graph", "static", "eager"):
            raise ValueError(f"mode must be graph, static or eager, not {mode!r}")
        self.model, self.optim, self.mode = model, optim, mode
        self.warmup, self.max_graphs, self.generators = warmup, max_graphs, list(generators)
        self.entries: dict[Hashable, tuple] = {}  # key -> (static inputs, graph or None, static terms)

    def __call__(self, step: Step, batch: Tensors, key: Hashable = ()) -> dict:
        """One training step on `batch`. `step` is used only when this (shapes, key) is first seen, or eagerly."""
        if self.mode == "eager":
            return step(batch)
        full_key = (key, tuple((tuple(t.shape), t.dtype, t.device) for t in batch))
        entry = self.entries.get(full_key)
        if entry is None:
            if len(self.entries) >= self.max_graphs:
                warnings.warn(f"StepRunner: more than {self.max_graphs} step shapes/keys; {key!r} runs eagerly",
                              stacklevel=2)
                return step(batch)
            entry = self.entries[full_key] = self._prepare(step, batch)
        static, graph, terms = entry
        with torch.no_grad():
            for buf, t in zip(static, batch):
                buf.copy_(t, non_blocking=True)
        if graph is None:
            return step(static)  # graph-shaped: the same buffers and state, run without capture
        graph.replay()
        return terms

    def _prepare(self, step: Step, batch: Tensors) -> tuple:
        """Static buffers, warm-up (then undone), and on CUDA the captured graph with its output terms."""
        static = [t.detach().clone() for t in batch]
        cuda = self.mode == "graph" and all(t.is_cuda for t in batch)
        snap = _Snapshot(self.model, self.optim, self.generators)
        if cuda:
            side = torch.cuda.Stream()  # warm-up off the default stream, as torch.cuda.graph's notes require
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    step(static)
            torch.cuda.current_stream().wait_stream(side)
        else:
            for _ in range(self.warmup):
                step(static)  # the same warm-up and restore on CPU, so the CPU tests cover them
        snap.restore()
        self.optim.zero_grad(set_to_none=True)
        if not cuda:
            return static, None, None
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                terms = step(static)
        except RuntimeError as e:
            raise RuntimeError(f"the training step cannot be captured as a CUDA graph ({e}); a host sync "
                               "(.item(), numpy) or a host RNG draw inside the step? run with graphs off") from e
        return static, graph, terms


def deterministic(enabled: bool = True) -> None:
    """Same seed, same GPU -> identical numbers: deterministic kernels where PyTorch has them.

    Costs: cuBLAS gets a fixed workspace (CUBLAS_WORKSPACE_CONFIG, read when cuBLAS initialises, so call this
    before the first CUDA matmul), cuDNN skips autotuning, and ops such as index_add/scatter backward use slower
    deterministic kernels. What it costs this workload on a GPU is not measured yet (bench/bench_gpu.py does).
    Ops without a deterministic kernel warn (warn_only) instead of stopping a run.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
