"""MM-Pyramid (docs/methods/mmpyramid.md#mm-pyramid): who sees whom at each level, shapes through the pyramid, the
stream-order and init switches, the parameter counts beside the release's, a training step and a resumed run."""

from __future__ import annotations

import json

import pytest
import torch

from avvp import variants
from avvp.cli import main
from avvp.methods.mmpyramid.model import Attention, MMPyramid, released_unused_params, window_mask
from avvp.models import build
from avvp.reporting.profile import count, random_inputs
from avvp.training import train as train_module
from avvp.training.losses import mmil_bce

T, D = 10, 512
SPEC = {"backbone": "mmpyr", "head": "mmil", "dropout": 0.2}


def built(spec: dict = SPEC, seed: int = 0):
    torch.manual_seed(seed)
    return build(spec)


def inputs(b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, T, 128, generator=g), torch.randn(b, T, 2048, generator=g),
            torch.randn(b, T, 512, generator=g))


def reach(fn, x: torch.Tensor) -> torch.Tensor:
    """(T, T) bool: [s, t] = output segment t changes when input segment s of `x` (1, T, D) changes.

    One batched call: row s of the batch perturbs segment s, the last row is the unperturbed reference."""
    batch = x.expand(T + 1, T, D).clone()
    batch[torch.arange(T), torch.arange(T)] += 10.0
    with torch.no_grad():
        y = fn(batch)
    return (y[:T] - y[T:]).abs().amax(dim=-1) > 1e-3


def band(width: int) -> torch.Tensor:
    t = torch.arange(T)
    return (t[:, None] - t[None, :]).abs() <= width


def test_window_masks_by_hand():
    # Per level, the pairs (t, s) with |t - s| <= 2^i among 100: 28, 44, 70, 98.
    assert [int(window_mask(T, 2 ** i, torch.device("cpu")).sum()) for i in range(4)] == [28, 44, 70, 98]
    widest = window_mask(T, 8, torch.device("cpu"))
    assert not widest[0, 9] and not widest[9, 0] and widest[0, 8] and widest[1, 9]   # not global for 10 segments
    assert window_mask(T, 1, torch.device("cpu")).tolist()[4] == [False] * 3 + [True] * 3 + [False] * 4


def test_who_sees_whom_at_each_level():
    """Each attention of level i (self and cross, keys moved, queries fixed) reaches |t - s| <= 2^i; the whole
    level, whose dilated convolution looks 2^i further, reaches |t - s| <= 2^(i+1)."""
    model = built().eval()
    v, a = torch.randn(1, T, D), torch.randn(1, T, D)
    q = v.expand(T + 1, T, D)                        # the queries stay; only keys and values move
    windows = [level.window for level in model.backbone.levels]
    assert windows == [1, 2, 4, 8]
    for level, w in zip(model.backbone.levels, windows):
        mask = window_mask(T, w, v.device)
        assert torch.equal(reach(lambda kv: level.self_v(q, kv, mask), v), band(w))
        assert torch.equal(reach(lambda kv: level.cross(q, kv, mask), a), band(w))
        assert torch.equal(reach(lambda x: level(q, x)[0], a), band(2 * w))
    assert not reach(lambda x: model.backbone.levels[3].cross(q, x, window_mask(T, 8, v.device)), a)[0, 9]
    # Level 2 (w = 4): even through its convolution, segment 0 does not reach segment 9.
    assert not reach(lambda x: model.backbone.levels[2](q, x)[0], a)[0, 9]


def test_masks_are_built_once_per_shape():
    model = built().eval()
    window_mask.cache_clear()
    with torch.no_grad():
        model(*inputs())
        first = window_mask.cache_info()
        model(*inputs(b=5))
    assert (first.misses, first.hits) == (4, 0)                 # one per level's window, on first use
    assert (window_mask.cache_info().misses, window_mask.cache_info().hits) == (4, 4)


def test_a_mask_first_made_under_inference_mode_still_trains():
    window_mask.cache_clear()
    model = built()
    with torch.inference_mode():
        model.eval()(*inputs())
    assert not window_mask(T, 1, torch.device("cpu")).is_inference()   # cached for training too
    model.train()
    mmil_bce(model(*inputs()), *[torch.zeros(2, 25)] * 3).backward()     # a cached inference tensor would raise
    assert model.inputs.fc_a.weight.grad is not None


def test_shapes_through_the_pyramid():
    model = built().eval()
    seen = []
    for level in model.backbone.levels:
        level.register_forward_hook(lambda m, args, out: seen.append([tuple(x.shape) for x in (*args, *out)]))
    fused = []
    model.backbone.fuse_v.layer.register_forward_hook(lambda m, args, out: fused.append(tuple(out.shape)))
    with torch.no_grad():
        out = model(*inputs(b=3))
    assert seen == [[(3, T, D)] * 4] * 4
    assert fused == [(3 * T, 4, D)]                            # per segment, the 4 levels as a sequence
    assert tuple(out["x_a"].shape) == tuple(out["x_v"].shape) == (3, T, D)
    assert tuple(out["frame_prob"].shape) == (3, T, 2, 25)
    two = built({**SPEC, "levels": 2}).eval()
    assert [level.window for level in two.backbone.levels] == [1, 2]
    with torch.no_grad():
        assert tuple(two(*inputs())["x_a"].shape) == (2, T, D)


def test_stream_order_switch_swaps_the_streams_the_head_reads():
    released, fixed = built(), built({**SPEC, "stream_order": "fixed"})
    assert all(torch.equal(p, q) for p, q in zip(released.state_dict().values(), fixed.state_dict().values()))
    with torch.no_grad():
        r, f = released.eval()(*inputs()), fixed.eval()(*inputs())
    assert torch.equal(r["x_a"], f["x_v"]) and torch.equal(r["x_v"], f["x_a"])
    # Released: index 0, pooled into a_prob and scored as audio, is the stream rooted in the visual input.
    backbone = released.backbone
    with torch.no_grad():
        _, v = released.inputs(*inputs())          # (f_a, f_v): follow the visual input up the pyramid
        a = released.inputs(*inputs())[0]
        outs_v = []
        for level in backbone.levels:
            v, a = level(v, a)
            outs_v.append(v)
        assert torch.equal(r["x_a"], backbone.fuse_v(outs_v))
    torch.testing.assert_close(r["a_prob"], f["v_prob"])
    torch.testing.assert_close(r["frame_prob"][:, :, 0], f["frame_prob"][:, :, 1])
    torch.testing.assert_close(r["global_prob"], f["global_prob"])


def test_released_init_copies_and_independent_does_not():
    def groups(model):
        atts = [m for m in model.modules() if isinstance(m, Attention)]
        ffns = [layer.ffn for level in model.backbone.levels for layer in (level.self_v, level.self_a, level.cross)]
        return atts, ffns, model.backbone.fuse_v.layer, model.backbone.fuse_a.layer

    atts, ffns, fuse_v, fuse_a = groups(built())
    assert len(atts) == 14 and len(ffns) == 12
    assert all(torch.equal(m.q.weight, p.weight) and torch.equal(m.q.bias, p.bias)
               for m in atts for p in (m.k, m.v, m.out))
    assert all(torch.equal(ffns[0].linear1.weight, f.linear1.weight) for f in ffns)
    assert all(torch.equal(p, q) for p, q in zip(fuse_v.parameters(), fuse_a.parameters()))
    assert not torch.equal(atts[0].q.weight, atts[1].q.weight)          # each attention its own draw
    atts, ffns, fuse_v, fuse_a = groups(built({**SPEC, "init": "independent"}))
    assert not any(torch.equal(m.q.weight, m.k.weight) for m in atts)
    assert not torch.equal(ffns[0].linear1.weight, ffns[1].linear1.weight)
    assert not torch.equal(fuse_v.attn.q.weight, fuse_a.attn.q.weight)


def test_parameters_beside_the_released_model():
    """Ours builds only what the forward pass uses: the release's 40,827,469 used parameters; the modules it
    builds and never uses add 3,168,256, giving its 43,995,725 as built."""
    model = built()
    assert sum(p.numel() for p in model.parameters()) == 40_827_469
    assert released_unused_params() == 3_168_256
    assert 40_827_469 + released_unused_params() == 43_995_725
    assert isinstance(model.backbone, MMPyramid)


def test_profile_both_conventions():
    """thop (the paper's convention) sees every Linear and Conv1d, attention projections included (they are plain
    Linear layers), but not the attention matmuls; the true count adds exactly those: per video, 4 levels x 4
    attended sequences x 2 x 2 x 10 x 10 x 512 plus 2 fusions x 10 segments x 2 x 2 x 4 x 4 x 512 FLOPs."""
    model = built()
    figures = count(model, random_inputs(2))
    assert figures["paper_params"] == figures["true_params"] == 40_827_469
    attention = 2 * (4 * 4 * 4 * T * T * D + 2 * T * 4 * 4 * 4 * D)
    assert figures["true_flops"] == 2 * figures["paper_macs"] + attention


def test_a_step_lowers_the_loss_and_gradients_reach_every_parameter():
    model = built()
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = inputs(b=4)
    y = torch.zeros(4, 25)
    y[:, [0, 3]] = 1.0

    def loss():
        return mmil_bce(model(*x), y, 0.9 * y + 0.05, y)

    model.eval()
    with torch.no_grad():
        before = loss().item()
    model.train()
    optim.zero_grad()
    loss().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    optim.step()
    model.eval()
    with torch.no_grad():
        assert loss().item() < before


class Killed(BaseException):
    """A kill in the middle of a run (not an Exception, so nothing on the way catches it)."""


def test_a_killed_run_resumes_to_the_uninterrupted_result(packed_tiny, tmp_path, monkeypatch):
    args = ["train", "--variant", "MM-Pyramid", "--seed", "1", "--data", str(packed_tiny), "--epochs", "2",
            "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    epoch_of = train_module.train_epoch

    def dies_in_epoch_2(*args, **kwargs):           # train_epoch(run, job, train, y_a, y_v, epoch, ...)
        if args[5] == 1:
            raise Killed
        return epoch_of(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", dies_in_epoch_2)
    with pytest.raises(Killed):
        main([*args, "--out", str(tmp_path / "cut")])
    assert (tmp_path / "cut" / "last.pt").exists() and not (tmp_path / "cut" / "done.json").exists()
    monkeypatch.setattr(train_module, "train_epoch", epoch_of)
    assert main([*args, "--out", str(tmp_path / "cut")]) == 0
    whole, cut = (json.loads((tmp_path / r / "done.json").read_text()) for r in ("whole", "cut"))
    assert cut["selected"] == whole["selected"] and cut["epochs_run"] == whole["epochs_run"] == 2
    wa, wb = torch.load(tmp_path / "whole" / "best.pt"), torch.load(tmp_path / "cut" / "best.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_rows_resolve_as_the_spec_says():
    rows = {name: variants.get(name) for name in variants.names() if name.startswith("MM-Pyramid")}
    assert rows["MM-Pyramid"].recipe["lr"] == 1e-4 and rows["MM-Pyramid"].model["dropout"] == 0.2
    assert rows["MM-Pyramid"].recipe["released_select"] == "val_later"
    assert rows["MM-Pyramid + Ours"].model["dropout"] == 0.4 and rows["MM-Pyramid + Ours"].losses == ("cms",)
    assert rows["MM-Pyramid + MA"].recipe["mil_target"] == "audio" and rows["MM-Pyramid + MA"].labels == "refined"
    assert rows["MM-Pyramid (fixed streams)"].model["stream_order"] == "fixed"
    assert {row.gating for row in rows.values()} == {"han"}


@pytest.mark.parametrize("spec, says", [({"levels": 5}, "levels"), ({"stream_order": "natural"}, "stream_order"),
                                        ({"init": "copied"}, "init"), ({"backbone": "han", "levels": 2}, "levels")])
def test_bad_switches_are_one_line_errors(spec, says):
    from avvp.errors import AvvpError

    with pytest.raises(AvvpError) as e:
        build({**SPEC, **spec})
    assert says in str(e.value) and "\n" not in str(e.value)
