"""Models: every variant builds, runs and trains; shapes, ranges, equivalences, stacking, determinism."""

from __future__ import annotations

import pytest
import torch

from avvp import variants
from avvp.errors import AvvpError
from avvp.models import build
from avvp.registry import FRAME_HEADS
from avvp.training.losses import mmil_bce

B = 3


def inputs(b: int = B, frames: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 10, 128, generator=g), torch.randn(b, frames, 2048, generator=g),
            torch.randn(b, 10, 512, generator=g))


def built(spec: dict, seed: int = 0):
    torch.manual_seed(seed)
    return build(spec)


@pytest.mark.parametrize("name", variants.names())
def test_every_variant_builds_runs_and_backpropagates(name):
    model_spec = variants.get(name).model
    model = built(model_spec)
    model.train()
    out = model(*inputs())
    d = model_spec.get("width", 512)         # the hidden width a spec may declare (VALOR+ is 256 wide)
    shapes = {"global_prob": (B, 25), "a_prob": (B, 25), "v_prob": (B, 25), "frame_prob": (B, 10, 2, 25),
              "frame_att_logit": (B, 10, 2, 25), "x_a": (B, 10, d), "x_v": (B, 10, d), "v_in": (B, 10, d)}
    # The interface (ARCHITECTURE.md); a head with its own parser may add outputs (CMPAE's uncertainties).
    own_parser = FRAME_HEADS.meta(model_spec["head"]).get("parser") is not None
    got = {k: tuple(v.shape) for k, v in out.items()}
    assert ({k: got[k] for k in shapes if k in got} if own_parser else got) == shapes
    for key in ("global_prob", "a_prob", "v_prob", "frame_prob"):
        assert out[key].min() >= 0 and out[key].max() <= 1, key
    y = (torch.arange(25) % 7 == 0).float().expand(B, 25)
    if own_parser:      # pooled its own way (avvp/models/cmpae.py and tests/test_cmpae.py)
        mmil_bce(out, y, y, y).backward()
        return
    # The video-level audio/visual probabilities are the frame probabilities pooled by a temporal
    # attention that sums to one over the 10 segments (softmax of the returned logits over time).
    att = torch.softmax(out["frame_att_logit"], dim=1)
    torch.testing.assert_close(att.sum(dim=1), torch.ones(B, 2, 25))
    pooled = (att * out["frame_prob"]).sum(dim=1)
    torch.testing.assert_close(out["a_prob"], pooled[:, 0])
    torch.testing.assert_close(out["v_prob"], pooled[:, 1])

    mmil_bce(out, y, y, y).backward()
    for proj in ("fc_a", "fc_v", "fc_st", "fc_fusion"):
        grad = getattr(model.inputs, proj).weight.grad
        assert grad is not None and grad.abs().sum() > 0, proj


@pytest.mark.parametrize("spec", [{}, {"head": "cmco"}, {"backbone": "ave"}, {"backbone": "avsdn"}])
def test_80_frames_and_per_second_means_give_the_same_outputs(spec):
    model = built(spec).eval()
    audio, frames, motion = inputs(frames=80)
    means = frames.view(B, 10, 8, 2048).mean(dim=2)
    with torch.no_grad():
        a, b = model(audio, frames, motion), model(audio, means, motion)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def _outputs(model, x):
    with torch.no_grad():
        return model.eval()(*x)


def test_released_stacking_reads_the_original_inputs():
    x = inputs()
    chained = built({"layers": 2, "stacking": "chained"})
    released = built({"layers": 2, "stacking": "released"})
    released.load_state_dict(chained.state_dict())
    assert not torch.allclose(_outputs(chained, x)["x_a"], _outputs(released, x)["x_a"])
    # Released: only the last layer shapes the output, so it equals a 1-layer HAN holding that layer.
    one = built({"layers": 1})
    state = {k.replace("backbone.layers.1.", "backbone.layers.0."): v for k, v in released.state_dict().items()
             if not k.startswith("backbone.layers.0.")}
    one.load_state_dict(state)
    torch.testing.assert_close(_outputs(one, x)["global_prob"], _outputs(released, x)["global_prob"])


def test_one_layer_stacking_modes_agree():
    x = inputs()
    chained, released = built({"layers": 1}), built({"layers": 1, "stacking": "released"})
    released.load_state_dict(chained.state_dict())
    for key, value in _outputs(chained, x).items():
        torch.testing.assert_close(value, _outputs(released, x)[key])


@pytest.mark.parametrize("spec", [{}, {"head": "cmco"}, {"backbone": "avsdn"}])
def test_same_seed_same_outputs_in_training_mode(spec):
    def run(seed):
        model = built(spec, seed).train()
        torch.manual_seed(seed + 100)             # dropout masks
        return model(*inputs())
    a, b, c = run(0), run(0), run(1)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["global_prob"], c["global_prob"])


@pytest.mark.parametrize("spec", [{"backbone": "lstm"}, {"layers": 4}, {"head": "cmco", "cmco_mode": "x"},
                                  {"backbone": "ave", "layers": 2}, {"dropout": 1.5}, {"width": 3}])
def test_bad_specs_are_one_line_errors(spec):
    with pytest.raises(AvvpError, match="model spec"):
        build(spec)


def test_bad_input_shape_is_an_error():
    audio, visual, motion = inputs()
    with pytest.raises(AvvpError, match="visual"):
        built({})(audio, visual[:, :9], motion)


def test_cpu_dropout_keeps_nn_dropout_semantics():
    from avvp.models.layers import Dropout
    drop = Dropout(0.25).train()
    torch.manual_seed(0)
    y = drop(torch.ones(200_000))
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.25) < 0.005          # ~ 4.5 sigma
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.75))
    x = torch.randn(5, requires_grad=True)
    y = drop(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.75)
    assert torch.equal(drop.eval()(x), x)


@pytest.mark.parametrize("name", ["ave", "avsdn"])
def test_recurrent_layers_compute_in_fp32_under_cpu_bf16_autocast(name):
    """CPU bf16 autocast would run nn.LSTM through a oneDNN bf16 primitive that AVX2-only CPUs lack (AVE and AVSDN
    failed there at their first bf16 step): on CPU the LSTMs run in fp32, the same on every CPU. Each LSTM's
    output under bf16 autocast is fp32 and equals its fp32 forward on the same (bf16-rounded) input exactly."""
    from avvp.models.precision import autocast
    from avvp.registry import BACKBONES

    torch.manual_seed(0)
    backbone = BACKBONES.get(name)({"dropout": 0.0}, 512).eval()
    seen = []
    hooks = [m.register_forward_hook(lambda m, args, out: seen.append((m, args, out)))
             for m in backbone.modules() if isinstance(m, torch.nn.LSTM)]
    f_a, f_v = torch.randn(2, 10, 512).bfloat16(), torch.randn(2, 10, 512).bfloat16()
    with torch.no_grad(), autocast("bf16", "cpu"):
        backbone(f_a, f_v)
    for hook in hooks:
        hook.remove()
    assert len(seen) == (2 if name == "ave" else 3)
    for lstm, args, (out, _) in seen:
        assert out.dtype == torch.float32
        with torch.no_grad():
            assert torch.equal(out, lstm(*args)[0])
