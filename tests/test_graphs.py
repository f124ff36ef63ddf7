"""The graph-shaped training step (avvp/training/graphs.py) on CPU: static buffers, warm-up undone, one entry per batch
shape and key, a tensor learning rate that a scheduler changes. It must compute exactly what the plain eager step
computes: same losses and same weights after several epochs with dropout, a partial last batch and a CM-S-like
batch doubling from epoch 2 on, same seed. (The capture itself needs a GPU: bench/bench_gpu.py compares there.)"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avvp.training.graphs import StepRunner, capturable_adam, deterministic, lr_to_device, make_step


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
    optim = capturable_adam(model.parameters(), 1e-2, "cpu")
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
    optim = capturable_adam(model.parameters(), 0.1, "cpu")
    lr = optim.param_groups[0]["lr"]
    sched = torch.optim.lr_scheduler.StepLR(optim, step_size=1, gamma=0.1)
    optim.step()
    sched.step()
    assert optim.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.01)
    optim.load_state_dict(optim.state_dict())
    lr_to_device(optim, "cpu")
    assert torch.is_tensor(optim.param_groups[0]["lr"]) and optim.param_groups[0]["lr"].item() == pytest.approx(0.01)


def test_more_keys_than_graphs_run_eagerly():
    torch.manual_seed(0)
    model = Tiny()
    optim = capturable_adam(model.parameters(), 1e-2, "cpu")
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
