"""What a CUDA graph refuses, seen on CPU: every row kind's training step (the exact callable StepRunner
captures) run under a dispatch mode that fails on the ops a captured step cannot hold; and the rest of the GPU
path's checks that need no GPU (bf16 saturation of every head, determinism of every CUDA subcommand, the
evaluation's attention probe, a resume that runs no pickled code).

A replay on CPU re-runs the Python step, so a host-to-device copy or a host sync inside the step passes every
other CPU test and fails only at capture on a GPU; this module is where they are caught.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from avvp import variants
from avvp.data import dataset
from avvp.models import build
from avvp.registry import LABEL_SOURCES
from avvp.training import label_sources, train
from avvp.training.losses import Batch

aten = torch.ops.aten


class CaptureLint(TorchDispatchMode):
    """Fails on an op a CUDA graph cannot capture: a tensor made from Python data (its host-to-device copy), a
    host sync (.item(), bool(), nonzero, masked_select, unique, equal), and any copy between devices."""

    REFUSED = {aten.lift_fresh.default: "a tensor made from Python data (torch.tensor: a host-to-device copy)",
               aten.lift_fresh_copy.default: "a tensor made from Python data",
               aten._local_scalar_dense.default: "a host sync (.item(), bool(), float() of a tensor)",
               aten.is_nonzero.default: "a host sync (bool() of a tensor)",
               aten.nonzero.default: "a data-dependent shape (nonzero: a host sync)",
               aten.masked_select.default: "a data-dependent shape (masked_select: a host sync)",
               aten._unique2.default: "a data-dependent shape (unique: a host sync)",
               aten.unique_consecutive.default: "a data-dependent shape (unique: a host sync)",
               aten.unique_dim.default: "a data-dependent shape (unique: a host sync)",
               aten.equal.default: "a host sync (torch.equal)"}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.REFUSED:
            raise AssertionError(f"{func}: {self.REFUSED[func]}")
        if func is aten._to_copy.default and "device" in kwargs and kwargs["device"] is not None \
                and torch.device(kwargs["device"]) != args[0].device:
            raise AssertionError(f"{func}: a copy from {args[0].device} to {kwargs['device']}")
        if func in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default) \
                and any(i is not None and i.dtype == torch.bool for i in args[1]):
            raise AssertionError(f"{func}: a boolean mask index (a data-dependent shape: a host sync)")
        if func is aten.copy_.default and args[0].device != args[1].device:
            raise AssertionError(f"{func}: a copy from {args[1].device} to {args[0].device}")
        return func(*args, **kwargs)


def test_the_lint_refuses_what_capture_refuses():
    x = torch.ones(3)
    for refused in (lambda: torch.tensor(float("inf")), lambda: x.sum().item(), lambda: bool(x[0] > 0),
                    lambda: x.nonzero(), lambda: torch.unique(x), lambda: x[x > 0]):
        with pytest.raises(AssertionError), CaptureLint():
            refused()
    with CaptureLint():           # what a captured step may do: fill kernels, a Python scalar in torch.where
        torch.where(x > 0, x, float("inf")), x.new_full((), float("inf")), torch.argsort(x, stable=True)


def row_step(name: str, n: int = 8):
    """The training step of a row as train_epoch hands it to StepRunner (one epoch in which every extra loss and
    the per-batch rule act), on n random videos, with its runner's totals and schedule."""
    row = variants.get(name)
    epoch = max([row.recipe[loss].get("start_epoch", 1) for loss in row.losses] + [2]) - 1
    job = train.Job.of(row, seed=0, epochs=epoch + 1)
    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(n, 25, generator=g) < 0.3).float()
    labels[:, 0] = 1
    source = LABEL_SOURCES.get(row.labels)
    # a per-second source's labels, (n, 10, 25): random seconds of the weak-label classes
    y = labels[:, None, :] * (torch.rand(n, 10, 25, generator=g) < 0.5) if source.per_second else labels
    split = dataset.Split(name="train", filenames=[f"v{i:03d}" for i in range(n)], labels=labels,
                          audio=torch.randn(n, 10, 128, generator=g), visual=torch.randn(n, 10, 2048, generator=g),
                          motion=torch.randn(n, 10, 512, generator=g))
    rule = label_sources.per_batch(row.labels)
    values = None if rule is None else torch.full((2, 25), 0.5, dtype=torch.float64)
    run = train.Trainer.of(job)
    step, _ = train.epoch_step(run, job, split, y, y, epoch, rule, values)
    return step, torch.arange(n // 2)


@pytest.mark.parametrize("name", variants.row_kinds())
def test_every_row_kinds_step_is_capturable(name):
    """Issue 30, defects 1-2: each row kind's step, the callable a CUDA graph captures, holds no op capture
    refuses (JoMoLD's and CMPAE's denoising made its infinity from Python data)."""
    step, index = row_step(name)
    step((index,))                    # warm-up, as StepRunner does before capture (optimiser state made)
    with CaptureLint():
        terms = step((index,))
    assert all(torch.isfinite(t) for t in terms.values())


def test_the_ranks_need_no_scatter_and_keep_ties_by_batch_index():
    """Issue 30, defect 3: under strict determinism CUDA's scatter_ takes a path that (in some releases) copies
    host-built strides, a second capture blocker: the loss ranks are the inverse permutation, argsort twice."""
    from avvp.methods.jomold.denoise import _ranks

    key = torch.tensor([[0.3, 2.0], [0.1, 2.0], [0.3, 1.0], [0.2, 2.0]])
    seen = []

    class Ops(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    with Ops():
        ranks = _ranks(key)
    # column 0: 0.1 < 0.2 < 0.3 = 0.3 (the tie by batch index); column 1: 1.0 < 2.0 = 2.0 = 2.0 (by batch index)
    assert ranks.tolist() == [[2, 1], [0, 2], [3, 0], [1, 3]]
    assert not [f for f in seen if "scatter" in str(f)], seen


# The layers whose output a head takes the sigmoid of: HAN's classifier, CM-Co's per-class MLPs, CMPAE's global
# branch (its evidence heads map logits through exp, not a sigmoid).
SIGMOID_LAYERS = ("fc_prob", "out_a", "out_v", "global_branch.fc")


def saturate(model) -> list[str]:
    """Every sigmoid's logit set to 7 (its layer's weights 0, its bias 7): a confident prediction; the labels
    given are all 0. The names of the biases set."""
    names = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            layer, _, kind = name.rpartition(".")
            if layer.endswith(SIGMOID_LAYERS):
                p.fill_(7.0) if kind == "bias" else p.zero_()
                names += [name] if kind == "bias" else []
    return names


@pytest.mark.parametrize("name", sorted({variants.get(n).model["head"]: n for n in variants.row_kinds()}.values()))
def test_bf16_keeps_every_heads_gradient_of_a_confidently_wrong_prediction(name):
    """Issue 30, defect 4: a bf16 sigmoid rounds p > 1 - 2^-9 (logits above ~6.2) to 1.0 and the clamped BCE has
    no gradient there; CMPAE's global branch took its sigmoid in bf16. One row of every head, every head's logit
    at 7, every label 0: fp32 and bf16 give the same gradient's sign on every saturated bias."""
    grads = {}
    for precision in ("fp32", "bf16"):
        job = train.Job.of(variants.get(name), seed=0, precision=precision)
        torch.manual_seed(0)
        model = build(job.spec)
        saturated = saturate(model)
        g = torch.Generator().manual_seed(1)
        zeros = torch.zeros(4, 25)
        per = torch.zeros(4, 10, 25) if LABEL_SOURCES.get(job.labels).per_second else zeros
        batch = Batch(torch.randn(4, 10, 128, generator=g), torch.randn(4, 10, 2048, generator=g),
                      torch.randn(4, 10, 512, generator=g), zeros, per.clone(), per.clone())
        loss, _ = train.batch_loss(model, job, batch, epoch=5, gen=torch.Generator().manual_seed(0))
        loss.backward()
        params = dict(model.named_parameters())
        grads[precision] = {n: params[n].grad.flatten() for n in saturated}
    assert grads["fp32"], "no head bias found to saturate"
    for n, fp32 in grads["fp32"].items():
        assert fp32.abs().min() > 1e-4, n
        assert (grads["bf16"][n].sign() == fp32.sign()).all(), n


@pytest.mark.parametrize("command", ["evaluate", "thresholds", "noise-ratios", "denoise-quality", "refine"])
def test_every_cuda_subcommand_runs_under_the_runs_determinism(command, monkeypatch):
    """Issue 30, defect 5: training turns strict determinism on for CUDA; evaluation and the passes over a run
    did not, so cuDNN could pick another kernel for the selected weights' re-scoring. One place (the CLI)
    applies it to every CUDA subcommand, before the subcommand's code runs."""
    from avvp import cli
    from avvp.registry import STAGES
    from avvp.training import graphs, slots

    order = []
    monkeypatch.setattr(slots, "claim", lambda: order.append("claim"))
    monkeypatch.setattr(graphs, "deterministic", lambda enabled=True: order.append(("deterministic", enabled)))
    stage = dataclasses.replace(STAGES.get(command), main=lambda args: order.append("main"))
    monkeypatch.setattr(STAGES._entries[command], "target", stage)      # the stage's code: only recorded
    args = {"evaluate": ["--split", "test"], "denoise-quality": ["--ratios", "r.json", "--out", "o.json"],
            "noise-ratios": ["--out", "o.json"], "refine": ["--out", "o"]}.get(command, [])
    assert cli.main([command, "--run", "R", *args, "--device", "cuda"]) == 0
    assert order == ["claim", ("deterministic", True), "main"]


def test_the_evaluation_chunk_sees_every_attention_call():
    """Issue 30, item 6: the chunk size of a CUDA evaluation keeps every attention call under the grid limit;
    MM-Pyramid's attention (scaled_dot_product_attention, no nn.MultiheadAttention) was not seen at all."""
    from avvp.evaluation.evaluate import MAX_ATTENTION_BATCH, attention_batch_per_video, chunk_size

    for name in variants.row_kinds():
        model = build(variants.get(name).model).eval()
        per_video = attention_batch_per_video(model)
        backbone = variants.get(name).model["backbone"]
        if backbone in ("han", "mmpyr"):
            assert per_video > 0, name
        assert chunk_size(model, "cuda") * max(per_video, 1) <= MAX_ATTENTION_BATCH, name


def test_a_checkpoint_holding_a_pickled_object_is_refused_in_one_line(packed_tiny, tmp_path, capsys):
    """Issue 30, defect 8: resuming loaded last.pt as a full pickle, which runs code from the file; the
    checkpoint holds tensors, dicts and numbers only, and is read with weights_only=True: a file carrying a
    pickled object is refused (one line; the run starts over, the object never built)."""
    from avvp.cli import main

    class Trap:
        """Unpickled, it calls print: the code a full pickle would run on resume."""
        def __reduce__(self):
            return print, ("CODE RAN FROM THE CHECKPOINT",)

    out = tmp_path / "run"
    assert main(["train", "--variant", "HAN", "--seed", "0", "--data", str(packed_tiny), "--out", str(out),
                 "--epochs", "1", "--threads", "1"]) == 0
    ckpt = torch.load(out / "last.pt", weights_only=True)            # what it holds loads without pickle
    ckpt["trap"] = Trap()
    torch.save(ckpt, out / "last.pt")
    (out / "done.json").unlink()                                       # the same job again: it would resume
    capsys.readouterr()
    assert main(["train", "--variant", "HAN", "--seed", "0", "--data", str(packed_tiny), "--out", str(out),
                 "--epochs", "1", "--threads", "1"]) == 0
    out_text = capsys.readouterr().out
    said = [line for line in out_text.splitlines() if "last.pt" in line]
    assert "CODE RAN FROM THE CHECKPOINT" not in out_text
    assert len(said) == 1 and "unreadable" in said[0] and "starting the run over" in said[0], said
    assert math.isfinite(torch.load(out / "last.pt", weights_only=True)["state"]["log"][-1]["loss_bce"])
