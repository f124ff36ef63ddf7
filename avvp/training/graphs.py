"""The training step as CUDA graphs: one launch per step instead of hundreds of small kernels.

A HAN-sized step on a GPU is launch-bound: eager PyTorch spends its time queueing kernels that each run for
microseconds. `StepRunner` captures the whole step (forward, backward, fused optimizer) once with
`torch.cuda.graph` and afterwards replays it: each step is a copy of the batch into static input buffers plus
`graph.replay()`. The trainer's batch is only the videos' index: the step gathers their features and labels
from the device-resident split and adds its loss terms into running totals, both inside the graph, so a step
costs two launches (the index copy and the replay).

The step is any callable `step(batch) -> terms` (a dict of detached loss tensors) that starts with
`optim.zero_grad(set_to_none=True)` and ends with `optim.step()`; `make_step` builds one from
`loss_fn(model, batch) -> (loss, terms)`. For it to be capturable it must not wait on the host (no `.item()`,
numpy or Python branches on tensor values) and draw randomness only from device-side torch RNG (dropout,
`torch.rand(..., device=...)`), which torch.cuda.graph makes replay-safe; a host generator's draw would be frozen
into the graph. The optimizer must keep its state on the device with the learning rate as a device tensor
and `capturable=True` (`capturable_adam`): schedulers write a tensor lr in place (`fill_`), so the captured step
sees each new rate. A captured step reads its inputs' memory: tensors the step closes over (the split it
gathers from, the totals) must stay the same tensors for the runner's life.

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

import contextlib
import os
import warnings
from typing import Callable, Hashable, Sequence

import torch

Tensors = Sequence[torch.Tensor]  # a step's inputs in a fixed order (losses.Batch is the named batch)
Step = Callable[[Tensors], dict]


def capturable_adam(params, lr: float, kind=torch.optim.Adam, **options) -> torch.optim.Adam:
    """Fused Adam (or `kind`, AdamW) for captured steps: `capturable=True` (step() refuses to run under capture
    otherwise; fused=True does not exempt it) and its learning rate a tensor on the parameters' device, so a
    captured step reads the rate the scheduler writes. Only for graphed runs: uncaptured, it warns and pays extra
    kernels."""
    params = list(params)
    device = params[0].device
    return kind(params, lr=torch.tensor(float(lr), device=device), fused=True, capturable=True, **options)


def make_capturable(optim: torch.optim.Optimizer) -> None:
    """Every group capturable again, its lr a tensor on its parameters' device: `load_state_dict` installs the
    SAVED groups (an eager run's checkpoint: capturable False, a float lr)."""
    for group in optim.param_groups:
        group["capturable"] = True
        group["lr"] = torch.as_tensor(group["lr"], dtype=torch.float32).to(group["params"][0].device)


def make_step(model: torch.nn.Module, optim: torch.optim.Optimizer,
              loss_fn: Callable[[torch.nn.Module, Tensors], tuple], totals: dict | None = None,
              clip: float | None = None) -> Step:
    """A training step of `loss_fn(model, batch) -> (loss, terms)`: zero grads, forward, backward, optimizer.

    With `totals` (name -> scalar tensor, made before the first step: a graph writes into fixed addresses) each
    term is also added into its total in place, inside the step: a captured graph then accumulates the loss sums
    itself, and its static outputs, overwritten by every replay, need not be read between steps. `clip`: the
    gradients' total norm is clipped to it before the optimiser's step (device ops only: no host sync).
    """
    params = [p for p in model.parameters() if p.requires_grad] if clip is not None else []

    def step(batch: Tensors) -> dict:
        optim.zero_grad(set_to_none=True)  # grads are then (re)allocated inside a capture, in its memory pool
        loss, terms = loss_fn(model, batch)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optim.step()
        if totals is not None:
            with torch.no_grad():
                for k, term in terms.items():
                    totals[k].add_(term)
        return terms
    return step


class _Snapshot:
    """Model tensors, optimizer state and RNG states, to undo warm-up steps in place (graphs keep addresses)."""

    def __init__(self, model, optim, generators: Sequence[torch.Generator], extra: Sequence[torch.Tensor] = ()):
        self.tensors = [(t, t.detach().clone()) for t in [*model.parameters(), *model.buffers(), *extra]]
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


def on_cuda(batch: Tensors) -> bool:
    return all(t.is_cuda for t in batch)


def capture_failure(e: Exception) -> str:
    """What failed, in one line, then the likely cause when the error is the one a host sync gives."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    hint = ""
    if "not permitted when stream is capturing" in text or "capture" in text and "invalidated" in text:
        hint = " (a host sync inside the step: .item(), numpy, a Python branch on a tensor, a host RNG draw?)"
    return f"the training step cannot be captured as a CUDA graph: {text}{hint}; run it with --graphs off"


class StepRunner:
    """Runs training steps as CUDA graphs (one per batch shape and `key`), graph-shaped on CPU, or eagerly.

    mode: "graph" captures on CUDA and falls back to graph-shaped elsewhere; "static" is graph-shaped everywhere
    (the CPU test path); "eager" calls the step on the batch as given (the switch that turns graphs off).
    Terms returned by a graphed step are its static outputs, overwritten by the next call: accumulate them inside
    the step, into `totals` (name -> scalar tensor, living as long as the runner and its graphs; warm-up steps
    are undone in them too).
    """

    def __init__(self, model: torch.nn.Module, optim: torch.optim.Optimizer, mode: str = "graph",
                 warmup: int = 3, max_graphs: int = 4, generators: Sequence[torch.Generator] = ()):
        if mode not in ("graph", "static", "eager"):
            raise ValueError(f"mode must be graph, static or eager, not {mode!r}")
        self.model, self.optim, self.mode = model, optim, mode
        self.warmup, self.max_graphs, self.generators = warmup, max_graphs, list(generators)
        self.entries: dict[Hashable, tuple] = {}  # key -> (static inputs, graph or None, static terms)
        self.totals: dict[str, torch.Tensor] = {}

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
        cuda = self.mode == "graph" and on_cuda(batch)
        snap = _Snapshot(self.model, self.optim, self.generators, list(self.totals.values()))
        # Warm-up and capture on ONE side stream: per-stream library workspaces (cuBLAS, cuDNN) are made during
        # warm-up, on the stream the capture then uses (torch.cuda.graph's own stream would make them in capture).
        side = torch.cuda.Stream() if cuda else None
        with _on_stream(side), warnings.catch_warnings():
            # A capturable optimizer warns once when it steps uncaptured: warm-up is meant to.
            warnings.filterwarnings("ignore", message=".*capturable=True.*without .* graph capture")
            for _ in range(self.warmup):
                step(static)  # the same warm-up and restore on CPU, so the CPU tests cover them
        if cuda:
            torch.cuda.current_stream().wait_stream(side)
        snap.restore()
        self.optim.zero_grad(set_to_none=True)
        if not cuda:
            return static, None, None
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=side):
                terms = step(static)
        except RuntimeError as e:
            raise RuntimeError(capture_failure(e)) from e
        return static, graph, terms


@contextlib.contextmanager
def _on_stream(side):
    """Run the block on CUDA stream `side` (after the current stream's work), or as it is when `side` is None."""
    if side is None:
        yield
        return
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        yield


def deterministic(enabled: bool = True) -> None:
    """Same seed, same GPU -> identical numbers: PyTorch's deterministic kernels, strictly.

    Strict, not warn_only: under warn_only the CUDA attention backward (flash, memory-efficient SDPA) only warns
    and keeps its non-deterministic kernel; strict mode makes it take the deterministic one, and any op without
    one raises instead of silently varying. Every row kind's training step runs under strict mode on CPU
    (tests/test_train.py); which CUDA kernels are chosen can only be checked on a GPU (bench/bench_gpu.py runs
    the same seed twice). Costs: cuBLAS gets a fixed workspace (CUBLAS_WORKSPACE_CONFIG, read when cuBLAS
    initialises, so call this before the first CUDA matmul), cuDNN skips autotuning, and the deterministic
    kernels may be slower: what that costs this workload on a GPU is not measured yet (bench/bench_gpu.py does).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
