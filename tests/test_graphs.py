"""The graph-shaped training step (avvp/training/graphs.py) on CPU: static buffers, warm-up undone, one entry per batch
shape and key, a tensor learning rate that a scheduler changes. It must compute exactly what the plain eager step
computes: same losses and same weights after several epochs with dropout, a partial last batch and a CM-S-like
batch doubling from epoch 2 on, same seed. (The capture itself needs a GPU: bench/bench_gpu.py compares there.)"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avvp.training.graphs import StepRunner, capturable_adam, deterministic, make_capturable, make_step


class Tiny(nn.Module):
    """Linear + dropout + layer norm: enough state (weights, RNG draws) to tell two paths apart."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.LayerNorm(16), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


def loss_fn_for(epoch: int, gen: torch.Generator):
    doubled = epoch >= 2  # like CM-S from its start epoch: the batch doubles with a permuted copy

    def loss_fn(model, batch):
        x, y = batch
        if doubled:
            perm = torch.randperm(x.shape[0], generator=gen)
            x, y = torch.cat([x, x[perm]]), torch.cat([y, y[perm]])
        loss = nn.functional.mse_loss(model(x), y)
        return loss, {"mse": loss.detach()}
    return loss_fn, doubled


def train(mode: str, epochs: int = 4, n: int = 22, batch: int = 8):
    """Losses of every step and the final weights; 22 videos in batches of 8 leave a partial batch of 6."""
    torch.manual_seed(0)
    model = Tiny()
    optim = capturable_adam(model.parameters(), 1e-2)
    sched = torch.optim.lr_scheduler.StepLR(optim, step_size=2, gamma=0.5)
    gen = torch.Generator().manual_seed(1)
    data = torch.Generator().manual_seed(2)
    x, y = torch.randn(n, 6, generator=data), torch.randn(n, 3, generator=data)
    runner = StepRunner(model, optim, mode=mode, generators=[gen])
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        loss_fn, doubled = loss_fn_for(epoch, gen)
        step = make_step(model, optim, loss_fn)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            terms = runner(step, (x[idx], y[idx]), key=doubled)
            losses.append(terms["mse"].item())
        sched.step()
    return losses, [p.detach().clone() for p in model.parameters()], runner, optim


def test_graph_shaped_step_computes_the_eager_function():
    eager_losses, eager_weights, _, _ = train("eager")
    static_losses, static_weights, runner, optim = train("static")
    assert static_losses == eager_losses  # bit-identical: warm-up steps were undone, RNG included
    for a, b in zip(static_weights, eager_weights):
        assert torch.equal(a, b)
    # full batch and partial batch, each without and with doubling: four entries, no more.
    assert len(runner.entries) == 4
    assert optim.param_groups[0]["lr"].item() == pytest.approx(1e-2 * 0.25)  # StepLR wrote the tensor in place


def test_the_scheduler_reaches_the_same_lr_tensor():
    model = Tiny()
    optim = capturable_adam(model.parameters(), 0.1)
    lr = optim.param_groups[0]["lr"]
    sched = torch.optim.lr_scheduler.StepLR(optim, step_size=1, gamma=0.1)
    optim.step()
    sched.step()
    assert optim.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.01)
    optim.load_state_dict(optim.state_dict())
    make_capturable(optim)
    assert torch.is_tensor(optim.param_groups[0]["lr"]) and optim.param_groups[0]["lr"].item() == pytest.approx(0.01)


def test_more_keys_than_graphs_run_eagerly():
    torch.manual_seed(0)
    model = Tiny()
    optim = capturable_adam(model.parameters(), 1e-2)
    runner = StepRunner(model, optim, mode="static", warmup=1, max_graphs=1)
    step = make_step(model, optim, lambda m, b: (m(b[0]).square().mean(), {}))
    runner(step, (torch.randn(4, 6),))
    with pytest.warns(UserWarning, match="runs eagerly"):
        runner(step, (torch.randn(5, 6),))
    assert len(runner.entries) == 1


def test_deterministic_switch():
    try:
        deterministic(True)
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    finally:
        deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()


# --- issue 15: what a GPU would do, checked on CPU with torch's own checks and stand-ins for torch.cuda ---
import contextlib  # noqa: E402
import warnings  # noqa: E402

from avvp import variants  # noqa: E402
from avvp.training import graphs, train as train_module  # noqa: E402


def capturing_accelerator(monkeypatch, capturing: bool = True) -> None:
    """torch.accelerator as a CUDA device whose current stream is (or is not) capturing a graph: what
    `Optimizer._accelerator_graph_capture_health_check` asks before every `Adam.step()`."""
    class Stream:
        def is_capturing(self):
            return capturing
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda check_available=False: torch.device("cuda"))
    monkeypatch.setattr(torch.accelerator, "current_stream", lambda device=None: Stream())


def graphed_cuda_job(graphs_on: bool = True):
    return train_module.Job.of(variants.get("HAN"), seed=0, device="cuda", cuda_graphs=graphs_on)


def test_a_graphed_cuda_jobs_adam_passes_torchs_capture_check_fresh_and_resumed(monkeypatch):
    """Issue 15 defect 1: Adam.step() under capture raises unless every param group is capturable; fused=True does
    not exempt it, and load_state_dict installs the SAVED groups (an old checkpoint's capturable=False)."""
    model = Tiny()  # on CPU: the optimiser a graphed CUDA job gets, its tensors on the parameters' device
    optim, _ = train_module.optimiser(graphed_cuda_job(), model)
    capturing_accelerator(monkeypatch)
    optim._accelerator_graph_capture_health_check()  # raises RuntimeError("... capturable is False") if not
    old = torch.optim.Adam(Tiny().parameters(), lr=1e-3, fused=True)  # as checkpoints of 950c827 saved it
    assert old.state_dict()["param_groups"][0]["capturable"] is False
    optim.load_state_dict(old.state_dict())
    train_module.for_graphs(optim, graphed_cuda_job())  # what fit does after resuming, where the lr is re-bound
    optim._accelerator_graph_capture_health_check()
    assert torch.is_tensor(optim.param_groups[0]["lr"]) and optim.param_groups[0]["capturable"]


def test_an_eager_cuda_jobs_adam_is_not_capturable(monkeypatch):
    """Capturable Adam pays extra kernels and warns on every uncaptured step: only graphed jobs get it."""
    optim, _ = train_module.optimiser(graphed_cuda_job(graphs_on=False), Tiny())
    assert not optim.param_groups[0]["capturable"]
    capturing_accelerator(monkeypatch, capturing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optim._accelerator_graph_capture_health_check()


class FakeCuda:
    """torch.cuda's streams and graphs, recorded: which stream warm-up ran on, which one capture used."""

    def __init__(self, fail: Exception | None = None):
        self.events, self.fail, self.default = [], fail, object()

    def install(self, monkeypatch):
        fake = self

        class Stream:
            def wait_stream(self, other):
                pass

        class CUDAGraph:
            def replay(self):
                fake.events.append(("replay",))

        @contextlib.contextmanager
        def stream(s):
            fake.events.append(("stream", s))
            yield

        @contextlib.contextmanager
        def graph(g, pool=None, stream=None, **kw):
            fake.events.append(("capture", stream))
            if fake.fail is not None:
                raise fake.fail
            yield

        for name, value in {"Stream": Stream, "CUDAGraph": CUDAGraph, "stream": stream, "graph": graph,
                            "current_stream": lambda device=None: Stream()}.items():
            monkeypatch.setattr(torch.cuda, name, value)
        monkeypatch.setattr(graphs, "on_cuda", lambda batch: True, raising=False)  # CPU tensors taken for CUDA


def test_warm_up_and_capture_use_the_same_side_stream(monkeypatch):
    """Issue 15 defect 8: per-stream library workspaces are made during warm-up; capturing on another stream
    (torch.cuda.graph's own) would create them during capture."""
    cuda = FakeCuda()
    cuda.install(monkeypatch)
    torch.manual_seed(0)
    model = Tiny()
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    runner = StepRunner(model, optim, mode="graph", warmup=1)
    runner(make_step(model, optim, lambda m, b: (m(b[0]).square().mean(), {})), (torch.randn(4, 6),))
    warm = [e[1] for e in cuda.events if e[0] == "stream"]
    captured = [e[1] for e in cuda.events if e[0] == "capture"]
    assert len(warm) == 1 and captured == warm, cuda.events


@pytest.mark.parametrize("error, says, blames_host_sync", [
    (RuntimeError("Attempting CUDA graph capture of step() for an instance of Adam but param_groups' capturable "
                  "is False."), "capturable is False", False),
    (RuntimeError("CUDA error: operation not permitted when stream is capturing"), "operation not permitted", True),
])
def test_a_failed_capture_says_what_failed(monkeypatch, error, says, blames_host_sync):
    """Issue 15 defect 1: the capture error named a host sync whatever failed."""
    FakeCuda(fail=error).install(monkeypatch)
    model = Tiny()
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    runner = StepRunner(model, optim, mode="graph", warmup=1)
    with pytest.raises(RuntimeError) as info:
        runner(make_step(model, optim, lambda m, b: (m(b[0]).square().mean(), {})), (torch.randn(4, 6),))
    message = str(info.value)
    assert says in message and ("host sync" in message) == blames_host_sync, message


def test_deterministic_is_strict():
    """Issue 15 defect 5: warn_only leaves the CUDA attention backward (flash, memory-efficient) on its
    non-deterministic kernels; strict mode selects their deterministic ones."""
    try:
        deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        deterministic(False)
