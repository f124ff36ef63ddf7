"""CMPAE (docs/methods/cmpae.md#cmpae): shapes, subjective logic by hand, parameters, passes, training and resume."""

from __future__ import annotations

import math

import pytest
import torch

from avvp.errors import AvvpError
from avvp.methods.cmpae.model import evidence, opinion
from avvp.models import build

B = 3
SPEC = {"backbone": "han", "head": "cmpae", "visual_dropout": 0.5}


def inputs(b: int = B, frames: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 10, 128, generator=g), torch.randn(b, frames, 2048, generator=g),
            torch.randn(b, 10, 512, generator=g))


def built(spec: dict | None = None, seed: int = 0):
    torch.manual_seed(seed)
    return build({**SPEC, **(spec or {})})


def test_shapes_and_ranges():
    out = built().train()(*inputs())
    shapes = {"global_prob": (B, 25), "a_prob": (B, 25), "v_prob": (B, 25), "u_a": (B, 25), "u_v": (B, 25),
              "U_g": (B,), "frame_prob": (B, 10, 2, 25), "frame_att_logit": (B, 10, 2, 25),
              "x_a": (B, 10, 512), "x_v": (B, 10, 512), "v_in": (B, 10, 512)}
    assert {k: tuple(v.shape) for k, v in out.items()} == shapes
    for key in ("global_prob", "a_prob", "v_prob", "frame_prob", "u_a", "u_v"):
        assert out[key].min() > 0 and out[key].max() < 1, key
    assert out["U_g"].min() > 0 and out["U_g"].max() <= 1


def test_subjective_logic_by_hand():
    """ev(x) = exp(clip(x, -10, 10) / 0.8); alpha = ev(E+) + 1, beta = ev(E-) + 1."""
    e_pos, e_neg = torch.tensor([0.0, 0.8, 20.0, -0.8]), torch.tensor([0.0, 0.0, 0.0, 1.6])
    p, u = opinion(e_pos, e_neg)
    e = math.e
    # 0, 0: alpha = beta = 2.  0.8, 0: alpha = e + 1, beta = 2.  20 clips to 10.  -0.8, 1.6: 1/e + 1, e^2 + 1.
    alpha = [2.0, e + 1, math.exp(12.5) + 1, 1 / e + 1]
    beta = [2.0, 2.0, 2.0, e * e + 1]
    torch.testing.assert_close(p, torch.tensor([a / (a + b) for a, b in zip(alpha, beta)]))
    torch.testing.assert_close(u, torch.tensor([2 / (a + b) for a, b in zip(alpha, beta)]))
    torch.testing.assert_close(p[:1], torch.tensor([0.5]))
    torch.testing.assert_close(u[:1], torch.tensor([0.5]))
    torch.testing.assert_close(evidence(torch.tensor([-30.0])), torch.tensor([math.exp(-12.5)]))


def test_pooled_opinion_and_global_branch_by_hand():
    """E+ = sum_t softmax_t(att+) e+ on the heads' own outputs, and U_g = 25 / sum_c (ev(mean_t g) + 1)."""
    model = built().eval()
    audio, visual, motion = inputs()
    with torch.no_grad():
        x_a, x_v = model.inputs(audio, visual, motion)
        z_a, z_v = model.encode(x_a, x_v, cross=False)
        head = model.evidence
        e_pos = head.fc_presence(z_a)
        e_neg = head.fc_absence(z_a + head.mix_va(z_a + z_v))
        att = head.fc_att(z_a).view(B, 10, 25, 2)
        E_pos = (torch.softmax(att[..., 0], 1) * e_pos).sum(1)
        E_neg = (torch.softmax(att[..., 1], 1) * e_neg).sum(1)
        alpha, beta = torch.exp(E_pos.clamp(-10, 10) / 0.8) + 1, torch.exp(E_neg.clamp(-10, 10) / 0.8) + 1
        out = model(audio, visual, motion, cross=False)
        torch.testing.assert_close(out["a_prob"], alpha / (alpha + beta))
        torch.testing.assert_close(out["u_a"], 2 / (alpha + beta))
        g = model.global_branch
        logit = g.fc(torch.nn.functional.leaky_relu(g.phi(x_a), 0.2)
                     + torch.nn.functional.leaky_relu(g.phi(x_v), 0.2))
        torch.testing.assert_close(out["global_prob"], torch.sigmoid(logit).mean(1))
        torch.testing.assert_close(out["U_g"], 25 / (torch.exp(logit.mean(1).clamp(-10, 10) / 0.8) + 1).sum(-1))


def test_parameters_as_used_by_the_release():
    """5,383,293: the release's 5,660,822 less its never-called MLP (275,481) and two unused LayerNorms."""
    assert sum(p.numel() for p in built().parameters()) == 5_383_293


def test_eval_fuses_the_two_passes_and_the_mix_uses_both_encoder_passes():
    model = built().eval()
    x = inputs()
    with torch.no_grad():
        fused, off = model(*x), model(*x, cross=False)
        model.infer_fuse = 1.0
        on = model(*x)
        f_a, f_v = model.inputs(*x)
        z_on, z_off = model.encode(f_a, f_v, True), model.encode(f_a, f_v, False)
    for key in ("a_prob", "v_prob", "frame_prob"):
        torch.testing.assert_close(fused[key], 0.7 * on[key] + 0.3 * off[key], msg=key)
    torch.testing.assert_close(on["x_a"], 0.8 * z_on[0] + 0.2 * z_off[0])
    torch.testing.assert_close(off["x_v"], z_off[1])
    torch.testing.assert_close(fused["global_prob"], off["global_prob"])   # pre-encoder: one value


def test_elu_inputs_and_switch_off():
    model = built()
    f_a, f_v = model.inputs(*inputs())
    assert f_a.min() >= -1 and f_v.min() >= -1 and f_a.min() < 0      # ELU's range (-1, inf)
    plain = built({"input_act": "none"})
    f_a, _ = plain.inputs(*inputs())
    assert f_a.min() < -1


def test_80_frames_take_elu_per_frame_before_the_mean():
    model = built().eval()
    audio, frames, motion = inputs(frames=80)
    with torch.no_grad():
        _, f_v80 = model.inputs(audio, frames, motion)
        per_frame = torch.nn.functional.elu(model.inputs.fc_v(frames)).view(B, 10, 8, 512).mean(2)
        st = torch.nn.functional.elu(model.inputs.fc_st(motion))
        want = torch.nn.functional.elu(model.inputs.fc_fusion(torch.cat([per_frame, st], -1)))
    torch.testing.assert_close(f_v80, want)


def test_dropouts_are_independent_per_pass_and_off_in_eval():
    model = built().train()
    x = inputs()
    a, b = model(*x), model(*x)
    assert not torch.equal(a["v_prob"], b["v_prob"])
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(*x)["v_prob"], model(*x)["v_prob"])


def test_only_on_han():
    with pytest.raises(AvvpError, match="head 'cmpae' needs backbone 'han'"):
        build({"backbone": "ave", "head": "cmpae"})
    with pytest.raises(AvvpError, match="ca_mix"):
        build({**SPEC, "ca_mix": 1.5})


def test_one_step_reaches_every_parameter():
    model = built().train()
    out = model(*inputs())
    y = (torch.arange(25) % 7 == 0).float().expand(B, 25)
    bce = torch.nn.functional.binary_cross_entropy
    (bce(out["a_prob"], y) + bce(out["v_prob"], y) + bce(out["global_prob"], y)).backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


def _jml_batch(u_g: float = 0.95):
    """One video, two classes: class 0 labelled (audio the argmax), class 1 not."""
    leaves = {"a_prob": [[0.8, 0.3]], "v_prob": [[0.6, 0.5]], "u_a": [[0.2, 0.4]], "u_v": [[0.3, 0.1]],
              "global_prob": [[0.5, 0.2]], "U_g": [u_g]}
    return {k: torch.tensor(v, requires_grad=True) for k, v in leaves.items()}, torch.tensor([[1.0, 0.0]])


def _grads(out: dict) -> dict:
    return {k: None if t.grad is None else t.grad.flatten().tolist() for k, t in out.items()}


def test_jml_odd_step_the_global_branch_learns_uncertainties_keep_gradients():
    from avvp.methods.cmpae.losses import jml_loss

    out, y = _jml_batch()
    loss = jml_loss(out, y, odd=True)
    # U = 0.95. Class 0: 0.95 (1 - 0.2) (0.5 - 0.8)^2 = 0.0684; class 1: 0.95 (1 - 0.25) (0.2 - 0.4)^2 = 0.0285.
    assert loss.item() == pytest.approx((0.0684 + 0.0285) / 2)
    loss.backward()
    g = _grads(out)
    assert g["global_prob"] == pytest.approx([0.95 * 0.8 * 2 * -0.3 / 2, 0.95 * 0.75 * 2 * -0.2 / 2])
    assert g["a_prob"] is None and g["v_prob"] is None          # sg(p_max), sg(p_mean)
    assert g["u_a"] == pytest.approx([-0.95 * 0.09 / 2, -0.95 * 0.04 / 2 / 2])
    assert g["u_v"] == pytest.approx([0.0, -0.95 * 0.04 / 2 / 2])  # class 0: visual is not the argmax
    assert g["U_g"] == pytest.approx([(0.8 * 0.09 + 0.75 * 0.04) / 2])


def test_jml_even_step_the_modalities_learn_from_the_detached_global_branch():
    from avvp.methods.cmpae.losses import jml_loss

    out, y = _jml_batch()
    loss = jml_loss(out, y, odd=False)
    assert loss.item() == pytest.approx(0.05 * (0.8 * 0.09 + 0.75 * 0.04) / 2)
    loss.backward()
    g = _grads(out)
    assert g["global_prob"] is None                              # sg(p_g)
    assert g["a_prob"] == pytest.approx([0.05 * 0.8 * 2 * 0.3 / 2, 0.05 * 0.75 * 2 * 0.2 * 0.5 / 2])
    assert g["v_prob"] == pytest.approx([0.0, 0.05 * 0.75 * 2 * 0.2 * 0.5 / 2])
    assert g["U_g"] == pytest.approx([-(0.8 * 0.09 + 0.75 * 0.04) / 2])   # 1 - U: raising U lowers the loss


def test_jml_floor_stops_the_global_uncertainty_gradient():
    from avvp.methods.cmpae.losses import jml_loss

    out, y = _jml_batch(u_g=0.5)
    loss = jml_loss(out, y, odd=True)
    assert loss.item() == pytest.approx(0.9 * (0.8 * 0.09 + 0.75 * 0.04) / 2)
    loss.backward()
    assert out["U_g"].grad.tolist() == [0.0]


def test_killed_cmpae_run_resumes_to_the_same_result(packed_tiny, tmp_path):
    """SIGKILL after the first epoch's checkpoint and start again: the same weights and metrics as a run left alone.
    The released-ratios row needs no estimator: epoch 2 on denoises (the released warm-up), and JML alternates."""
    import json
    import subprocess
    import sys

    from test_train import kill_after_first_checkpoint

    from avvp.cli import main

    args = ["--variant", "CMPAE (released ratios)", "--seed", "1", "--data", str(packed_tiny), "--epochs", "3",
            "--threads", "1"]
    assert main(["train", *args, "--out", str(tmp_path / "whole")]) == 0
    cut = tmp_path / "cut"
    kill_after_first_checkpoint([sys.executable, "-m", "avvp", "train", *args, "--out", str(cut)], cut)
    res = subprocess.run([sys.executable, "-m", "avvp", "train", *args, "--out", str(cut)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stdout
    whole, resumed = (json.loads((tmp_path / r / "done.json").read_text()) for r in ("whole", "cut"))
    assert resumed["selected"] == whole["selected"] and resumed["selected_epoch"] == whole["selected_epoch"]
    for name in ("best.pt", "early.pt"):
        wa, wb = torch.load(tmp_path / "whole" / name), torch.load(cut / name)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    log = (tmp_path / "whole" / "log.csv").read_text().splitlines()
    assert "loss_jml" in log[0] and "loss_jomold_contrast" in log[0]


def test_jml_alternates_on_the_step_index_in_the_loop(packed_tiny, monkeypatch):
    """The step counts itself within the epoch: odd steps train the global branch, even ones the modalities
    (tiny: 64 videos, batch 16 here, 4 steps an epoch: even, odd, even, odd), for eager and graph-shaped steps.
    The parity is a device tensor inside the step, not a Python choice: one graph (key) serves both parities."""
    import dataclasses

    from avvp import variants
    from avvp.data import dataset
    from avvp.methods.cmpae import losses
    from avvp.training import train

    seen = []
    real = losses.jml_loss
    monkeypatch.setattr(losses, "jml_loss", lambda out, y, odd, *a: seen.append(bool(odd)) or real(out, y, odd, *a))
    row = variants.get("CMPAE (no JML)")
    row = dataclasses.replace(row, losses=("jml",), recipe={**row.recipe, "batch": 16})
    split = dataset.load_split(packed_tiny, "train")
    for mode, warmup_steps in (("eager", 0), ("static", 3)):
        seen.clear()
        job = train.Job.of(row, seed=0, epochs=1)
        run = train.Trainer.of(job, mode=mode)
        train.train_epoch(run, job, split, split.labels.float(), split.labels.float(), 0)
        # static: each new batch shape's 3 warm-up steps (undone) before its first step; the 2nd shape is absent
        # (64 = 4 x 16), so one warm-up of 3 from step 0, then the 4 steps
        assert seen[warmup_steps:] == [False, True, False, True], mode
        assert run.runner.totals[train.STEP_COUNT].item() == 4
    assert train.phase_key(job, 0) == train.phase_key(job, 1)


@pytest.mark.parametrize("row, message", [
    ({"runs_of": "CMPAE (no such row)", "gating": "ma"},
     "variant 'X': runs_of: 'CMPAE (no such row)' is not a row with runs of its own"),
    ({"runs_of": "CMPAE (MA gating)", "gating": "han"},
     "variant 'X': runs_of: 'CMPAE (MA gating)' is not a row with runs of its own"),
    ({"runs_of": "CMPAE", "gating": "ma", "recipe": "cmpae"}, "variant 'X': recipe: a row with runs_of trains nothing"),
])
def test_a_bad_runs_of_row_is_one_line(tmp_path, capsys, row, message):
    import yaml

    from avvp import sheets
    from avvp.cli import main

    bad = tmp_path / "mine.yaml"
    bad.write_text(yaml.safe_dump({"variants": {"X": row}}))
    assert main(["train", "--variant", "X", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "run"),
                 "--variants-file", str(sheets.VARIANTS_FILE), "--variants-file", str(bad)]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_runs_of_row_is_its_rows_runs_under_its_own_gating():
    from avvp import variants

    cmpae, ma = variants.get("CMPAE"), variants.get("CMPAE (MA gating)")
    assert ma.runs == cmpae.runs == cmpae.slug and ma.slug == "cmpae_ma_gating" and ma.gating == "ma"
    assert ma.model == cmpae.model and ma.recipe == cmpae.recipe and ma.runs_gating == cmpae.gating
    assert "CMPAE (MA gating)" in variants.names() and "CMPAE (MA gating)" not in variants.trained()


def test_jml_on_a_head_without_uncertainties_is_one_line():
    from avvp.methods.cmpae.losses import JML

    out = {k: torch.full((2, 25), 0.5) for k in ("a_prob", "v_prob", "global_prob")}
    with pytest.raises(AvvpError, match="loss 'jml' needs the uncertainties of head 'cmpae'"):
        JML.term(out, out, None, {"weight": 1.0, "lambda": 1.0, "floor": 0.9})


def test_the_curves_of_a_table_with_a_runs_of_row_read_its_rows_runs(tmp_path, monkeypatch):
    """Table 5's `CMPAE (MA gating)` has no run folder of its own: its curves are CMPAE's runs (drawn once)."""
    import json

    from avvp import paths, variants
    from avvp.reporting import curves

    run = paths.run_folder(variants.get("CMPAE").slug, 0, tmp_path)
    run.mkdir(parents=True)
    (run / "log.csv").write_text("epoch,loss_bce,val_segment_type_av\n1,0.9,40.0\n2,0.7,45.0\n")
    (run / "done.json").write_text(json.dumps({"selected_epoch": 2, "selected_by": "val segment type_av"}))
    spec = {"rows": [{"variant": "CMPAE"}, {"variant": "CMPAE (MA gating)", "base": "CMPAE"}], "source": "T"}
    seen = []
    monkeypatch.setattr(curves, "draw", lambda rows, out, title: seen.extend(rows))   # what would be drawn
    curves.table_curves(spec, variants.resolve(["CMPAE", "CMPAE (MA gating)"]), tmp_path, [0], tmp_path / "c.png",
                        "table5")
    assert seen == [("CMPAE", [run])]
