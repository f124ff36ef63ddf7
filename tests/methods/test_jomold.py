"""JoMoLD (docs/methods/jomold.md#jomold): its denoising rule, warm-up, noise ratios and contrast on hand-made cases."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp.errors import AvvpError
from avvp.methods.jomold.denoise import (
    denoised_targets,
    detection_losses,
    estimate_ratios,
    iterations_per_epoch,
    read_ratios,
    removals,
    warmup_schedule,
    write_ratios,
)
from avvp.methods.jomold.losses import jomold_contrast
from avvp.methods.ma.losses import ma_contrast
from avvp.registry import EXTRA_LOSSES


def t(x):
    return torch.tensor(x, dtype=torch.float32)


# --- the loss-rank rule ---------------------------------------------------------------------------------
# Four videos, three classes. Class 0: all four positive; class 1: videos 1-3; class 2: video 0 only.
Y = t([[1, 0, 1], [1, 1, 0], [1, 1, 0], [1, 1, 0]])
L_A = t([[0.2, 0.0, 0.1], [0.5, 0.6, 0.0], [0.9, 0.3, 0.0], [0.1, 0.1, 0.0]])
L_V = t([[0.9, 5.0, 3.0], [0.1, 0.2, 0.0], [0.8, 0.7, 0.0], [0.3, 0.4, 0.0]])


def test_removals_by_hand():
    r_a = torch.tensor([0.5, 0.34, 0.9], dtype=torch.float64)
    r_v = torch.tensor([0.5, 0.5, 0.9], dtype=torch.float64)
    remove_a, remove_v = removals(L_A, L_V, Y, r_a, r_v)
    # Class 0, n = 4, k = floor(0.5 * 4) = 2. Visual: 2 largest l_v {0, 2} AND 2 smallest l_a {3, 0} -> {0}.
    # Audio: 2 largest l_a {2, 1} AND 2 smallest l_v {1, 3} -> {1}.
    # Class 1, n = 3 (video 0 is a negative: its l_v 5.0 and l_a 0.0 never count). Visual k = floor(1.5) = 1:
    # largest l_v video 2, smallest l_a video 3 -> none. Audio k = floor(0.34 * 3) = 1: largest l_a video 1,
    # smallest l_v video 1 -> {1}.
    # Class 2, n = 1, k = floor(0.9) = 0: a class with r n_c < 1 is never denoised.
    assert remove_v.tolist() == [[True, False, False], [False] * 3, [False] * 3, [False] * 3]
    assert remove_a.tolist() == [[False] * 3, [True, True, False], [False] * 3, [False] * 3]


def test_removals_full_ratio_and_zero_ratio():
    ones = torch.ones(3, dtype=torch.float64)
    # r = 1: k = n_c, every positive is among both the largest and the smallest: all positives go.
    remove_a, remove_v = removals(L_A, L_V, Y, ones, ones)
    assert remove_v.tolist() == (Y > 0).tolist() and remove_a.tolist() == (Y > 0).tolist()
    remove_a, remove_v = removals(L_A, L_V, Y, 0 * ones, 0 * ones)
    assert not remove_a.any() and not remove_v.any()


def test_removals_ties_rank_by_batch_index():
    y = t([[1], [1], [1], [1]])
    same = t([[0.5], [0.5], [0.5], [0.5]])
    # k = 2; all losses tie: the 2 "largest" and the 2 "smallest" are both videos {0, 1} (lower index first).
    r = torch.tensor([0.5], dtype=torch.float64)
    remove_a, remove_v = removals(same, same, y, r, r)
    assert remove_v[:, 0].tolist() == [True, True, False, False]
    assert remove_a[:, 0].tolist() == [True, True, False, False]


def test_denoised_targets_hard_zero():
    y = t([[1, 0, 1]])
    t_v = 0.9 * y + 0.05
    t_a2, t_v2 = denoised_targets(y, t_v, torch.tensor([[False, False, True]]), torch.tensor([[True, False, False]]))
    assert t_a2.tolist() == [[1.0, 0.0, 0.0]]
    # The removed visual target is 0, not the smoothed negative 0.05; the other negative keeps 0.05.
    assert t_v2[0, 0].item() == 0.0 and t_v2[0, 1].item() == pytest.approx(0.05) and t_v2[0, 2].item() == \
        pytest.approx(0.95)


def test_detection_losses_by_hand_and_clamped():
    l_a, l_v = detection_losses(t([[0.8, 0.0]]), t([[0.5, 1.0]]), t([[1.0, 0.0]]), t([[0.95, 0.05]]))
    assert l_a[0, 0].item() == pytest.approx(-math.log(0.8), rel=1e-6)
    assert l_a[0, 1].item() == pytest.approx(-math.log(1 - 1e-7), abs=1e-6)     # p = 0 is clamped to 1e-7
    assert l_v[0, 0].item() == pytest.approx(math.log(2), rel=1e-6)
    # p = 1 is clamped to 1 - 1e-7, which float32 rounds to 1 - 2^-23.
    top = 1 - 2 ** -23
    assert l_v[0, 1].item() == pytest.approx(-(0.05 * math.log(top) + 0.95 * math.log(1 - top)), rel=1e-5)
    assert l_a.dtype == torch.float32


# --- the warm-up ----------------------------------------------------------------------------------------
def test_warmup_released_nothing_in_epoch_one_then_full():
    r = torch.tensor([0.4, 0.2], dtype=torch.float64)
    epoch1 = warmup_schedule(r, 0, 4, "released")
    assert [x.tolist() for x in epoch1] == [[0.0, 0.0]] * 4     # t = 0: factor 0, and min keeps it at 0
    epoch2 = warmup_schedule(r, 1, 4, "released")               # t = 4..7: factor 4/3.6 > 1
    assert [x.tolist() for x in epoch2] == [[0.4, 0.2]] * 4


def test_warmup_ramp_by_hand():
    r = torch.tensor([0.36], dtype=torch.float64)
    epoch1 = [x.item() for x in warmup_schedule(r, 0, 4, "ramp")]  # r * t / 3.6
    assert epoch1 == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert [x.item() for x in warmup_schedule(r, 1, 4, "ramp")] == pytest.approx([0.36] * 4)
    # I = 79 as released: the ramp is full from t = 72 (t / 71.1 >= 1), i.e. over 71 iterations after t = 0.
    ramp = [x.item() for x in warmup_schedule(r, 0, 79, "ramp")]
    assert ramp[71] < 0.36 and ramp[72] == 0.36


def test_warmup_unknown_is_one_line():
    with pytest.raises(AvvpError, match="warm-up 'linear': unknown"):
        warmup_schedule(torch.zeros(2), 0, 4, "linear")


def test_iterations_per_epoch():
    assert iterations_per_epoch(10000, 128) == 79 and iterations_per_epoch(128, 128) == 1


# --- stage 2's noise ratios -----------------------------------------------------------------------------
def hand_batches():
    a = [t([[0.8, 0.2], [0.4, 0.6]]), t([[0.26, 0.1]])]
    v = [t([[0.9, 0.3], [0.1, 0.9]]), t([[0.3, 0.9]])]
    y = [t([[1, 0], [1, 1]]), t([[1, 1]])]
    return a, v, y


def test_noise_ratios_by_hand():
    got = estimate_ratios(*hand_batches())
    # m_a: the mean of the batch means (the short last batch weighs as a full one): class 0 (0.6 + 0.26) / 2 =
    # 0.43, class 1 (0.4 + 0.1) / 2 = 0.25. Audio-noisy positives (a / m_a < 0.6): class 0: 0.8/0.43, 0.4/0.43,
    # 0.26/0.43 = 0.605: none (a mean over videos, 0.487, would flag the last); class 1: 0.6/0.25 = 2.4 no,
    # 0.1/0.25 = 0.4 yes.
    assert got["audio"]["mean"] == pytest.approx([0.43, 0.25])
    assert got["audio"]["noisy"] == [0, 1] and got["audio"]["ratio"] == [0.0, 0.5]
    # m_v: class 0 (0.5 + 0.3) / 2 = 0.4, class 1 (0.6 + 0.9) / 2 = 0.75. Visual-noisy (0.95 v / m_v < 1.8):
    # class 0: 2.1375 no, 0.2375 yes, 0.7125 yes; class 1: 1.14 yes, 1.14 yes.
    assert got["visual"]["mean"] == pytest.approx([0.4, 0.75])
    assert got["visual"]["noisy"] == [2, 2] and got["visual"]["ratio"] == [2 / 3, 1.0]
    assert got["positives"] == [3, 2] and got["batches"] == 2
    assert got["classes"] == ["Speech", "Car"]


def test_noise_ratios_class_without_positives_is_zero():
    got = estimate_ratios([t([[0.1, 0.5]])], [t([[0.1, 0.5]])], [t([[0, 1]])])
    assert got["positives"] == [0, 1] and got["audio"]["ratio"][0] == 0.0 and got["visual"]["ratio"][0] == 0.0


def test_noise_ratios_bad_input_is_one_line():
    with pytest.raises(AvvpError, match="one audio, visual and label tensor per batch"):
        estimate_ratios([], [], [])


def full_ratios():
    a, v, y = hand_batches()
    pad = lambda ts: [torch.cat([x, torch.full((x.shape[0], 23), 0.5)], dim=1) for x in ts]  # noqa: E731
    return estimate_ratios(pad(a), pad(v), pad(y))


def test_ratios_file_round_trip(tmp_path):
    ratios = full_ratios()
    write_ratios(tmp_path / "noise_ratios.json", ratios)
    r_a, r_v = read_ratios(tmp_path / "noise_ratios.json")
    assert r_a.dtype == torch.float64 and r_a.shape == (25,)
    assert r_a[:2].tolist() == [0.0, 0.5] and r_v[:2].tolist() == [2 / 3, 1.0]


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(format=2), "not a noise ratios file of format 1"),
    (lambda r: r["audio"].update(ratio=[0.1] * 24), "audio.ratio must be a list of 25 numbers"),
    (lambda r: r["visual"]["ratio"].__setitem__(3, 1.5), r"visual.ratio\[3\] \(Dog\) = 1.5 is not a number"),
    (lambda r: r["visual"]["ratio"].__setitem__(0, "x"), r"visual.ratio\[0\] \(Speech\)"),
])
def test_ratios_file_bad_input_is_one_line(tmp_path, edit, message):
    ratios = full_ratios()
    edit(ratios)
    with pytest.raises(AvvpError, match=message):
        write_ratios(tmp_path / "w.json", ratios)
    assert not (tmp_path / "w.json").exists()
    (tmp_path / "r.json").write_text(json.dumps(ratios))
    with pytest.raises(AvvpError, match=message) as e:
        read_ratios(tmp_path / "r.json")
    assert "\n" not in str(e.value) and "r.json" in str(e.value)


def test_ratios_file_not_json_is_one_line(tmp_path):
    (tmp_path / "r.json").write_text("{not json")
    with pytest.raises(AvvpError) as e:
        read_ratios(tmp_path / "r.json")
    assert "\n" not in str(e.value) and "r.json" in str(e.value)


# --- the contrastive term -------------------------------------------------------------------------------
def test_jomold_contrast_orthogonal_segments_by_hand():
    # Audio and visual segments the same one-hot vectors: logits 1/0.2 = 5 on u = t, 0 elsewhere, so
    # p_t(t) = e^5 / (e^5 + 9), p_t(u) = 1 / (e^5 + 9), and sum_u q p = (0.9 e^5 + 9 * (0.1/9)) / (e^5 + 9).
    eye = torch.eye(10, 16).unsqueeze(0)
    z = math.exp(5) + 9
    expected = -math.log((0.9 * math.exp(5) + 0.1) / z)
    assert jomold_contrast(eye, eye).item() == pytest.approx(expected, rel=1e-5)
    # NOT MA's cross-entropy on the same input (-sum q log p = log z - 4.5).
    assert ma_contrast(eye, eye).item() == pytest.approx(math.log(z) - 4.5, rel=1e-5)
    assert abs(expected - (math.log(z) - 4.5)) > 0.05
    assert jomold_contrast(3 * eye, 0.5 * eye).item() == pytest.approx(expected, rel=1e-5)   # cosine: no scale


def test_jomold_contrast_two_segments_by_hand():
    # T = 2, smoothing 0.2, temperature 1: q = (0.8, 0.2) on segment 0's row, (0.2, 0.8) on segment 1's.
    x_a = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    x_v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    c = 1 / math.sqrt(2)
    p0 = math.e / (math.e + 1)                       # segment 0: logits (1, 0)
    seg0 = -math.log(0.8 * p0 + 0.2 * (1 - p0))
    seg1 = -math.log(0.2 * 0.5 + 0.8 * 0.5)          # logits (c, c): p = (1/2, 1/2), any q sums to 1/2
    assert c > 0 and seg1 == pytest.approx(math.log(2))
    assert jomold_contrast(x_a, x_v, temperature=1.0, smoothing=0.2).item() == pytest.approx(
        (seg0 + seg1) / 2, rel=1e-6)


def test_jomold_contrast_registered_on_post_han_visual():
    from avvp.training.losses import Batch

    entry = EXTRA_LOSSES.get("jomold_contrast")
    assert entry.augment is None
    eye = torch.eye(10, 16).unsqueeze(0)
    # The term reads x_a and x_v (post-HAN, before the visual dropout), never v_in (MA's pre-HAN visual).
    first = {"x_a": eye, "x_v": eye, "v_in": torch.randn(1, 10, 16)}
    batch = Batch(*(torch.zeros(1),) * 3, y=torch.zeros(1, 25), y_a=torch.zeros(1, 25), y_v=torch.zeros(1, 25))
    cfg = {"weight": 2.0, "temperature": 0.2, "smoothing": 0.1}
    assert entry.term(first, first, batch, cfg).item() == pytest.approx(2 * jomold_contrast(eye, eye).item())


# --- the model switches ---------------------------------------------------------------------------------
def test_rows_without_the_new_switches_keep_their_specs():
    from avvp import models, variants

    for name in variants.names():
        spec = variants.get(name).model
        if "JoMoLD" not in name and "CMPAE" not in name:   # CMPAE's rows set visual_dropout 0.5 too
            # x-omit-default: a switch at its default is not in the spec, so older job keys are unchanged.
            assert "cross_attention" not in spec and "visual_dropout" not in spec, name
    assert models.normalise({"backbone": "han", "cross_attention": "on", "visual_dropout": 0.0}) == \
        models.normalise({"backbone": "han"})
    with pytest.raises(AvvpError, match="unknown key 'cross_attention'"):
        models.normalise({"backbone": "avsdn", "cross_attention": "off"})


def inputs(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 10, 128, generator=g), torch.randn(b, 10, 2048, generator=g),
            torch.randn(b, 10, 512, generator=g))


def test_cross_attention_off_is_self_attention_and_feed_forward_with_the_same_weights():
    from avvp import models

    torch.manual_seed(0)
    on = models.build({"backbone": "han"}).eval()
    torch.manual_seed(0)
    off = models.build({"backbone": "han", "cross_attention": "off"}).eval()
    assert all(torch.equal(a, b) for a, b in zip(on.state_dict().values(), off.state_dict().values()))
    x = inputs()
    with torch.no_grad():
        a, b, c = on(*x, cross=False), off(*x), on(*x)
        # By hand: the layer on the stacked modalities with no other modality's keys.
        f_a, f_v = on.inputs(*x)
        layer = on.backbone.layers[0]
        q = torch.cat([f_a, f_v])
        y = layer.norm1(q + layer.self_attn(q, q, q, need_weights=False)[0])
        y = layer.norm2(y + layer.linear2(torch.relu(layer.linear1(y))))
    assert torch.equal(a["x_a"], b["x_a"]) and torch.equal(a["a_prob"], b["a_prob"])
    assert torch.allclose(a["x_a"], y[:3], atol=1e-6) and torch.allclose(a["x_v"], y[3:], atol=1e-6)
    assert not torch.allclose(a["x_a"], c["x_a"])        # on: the cross-modal term is there


def test_visual_dropout_feeds_the_heads_not_x_v():
    from avvp import models

    torch.manual_seed(1)
    plain = models.build({"backbone": "han"})
    torch.manual_seed(1)
    dropped = models.build({"backbone": "han", "visual_dropout": 0.5})
    x = inputs()
    with torch.no_grad():
        assert torch.equal(plain.eval()(*x)["v_prob"], dropped.eval()(*x)["v_prob"])   # eval: no dropout
        torch.manual_seed(5)
        p = plain.train()(*x)
        torch.manual_seed(5)
        d = dropped.train()(*x)
    # x_v (the contrast's input) is the backbone's output before the visual dropout; the heads see the dropout.
    assert torch.equal(p["x_v"], d["x_v"]) and torch.equal(p["x_a"], d["x_a"])
    assert not torch.equal(p["v_prob"], d["v_prob"])


def test_mmil_bce_loss_weights_by_hand():
    from avvp.training.losses import mmil_bce

    out = {"a_prob": t([[0.8]]), "v_prob": t([[0.5]]), "global_prob": t([[0.9]])}
    y = t([[1.0]])
    got = mmil_bce(out, y, y, y, {"audio": 2, "visual": 1, "global": 1}).item()
    assert got == pytest.approx(-2 * math.log(0.8) + math.log(2) - math.log(0.9), rel=1e-6)
    assert mmil_bce(out, y, y, y).item() == pytest.approx(-math.log(0.8) + math.log(2) - math.log(0.9), rel=1e-6)


# --- stage 3 in the training loop -------------------------------------------------------------------------
def jomold_job(**recipe):
    from avvp import variants
    from avvp.training.train import Job

    row = variants.get("JoMoLD")
    return dataclasses.replace(Job.of(row, seed=0), recipe={**row.recipe, **recipe})


def test_denoise_batch_is_the_rule_on_a_detection_pass_with_cross_attention_off():
    from avvp import models
    from avvp.methods.jomold.denoise import denoise_batch
    from avvp.training.losses import Batch
    from avvp.training.train import targets

    job = jomold_job()
    torch.manual_seed(0)
    model = models.build(job.spec).train()
    audio, visual, motion = inputs(b=8, seed=2)
    y = (torch.rand(8, 25, generator=torch.Generator().manual_seed(3)) < 0.5).float()
    ratios = torch.full((2, 25), 0.5)
    torch.manual_seed(7)
    got = denoise_batch(model, job, Batch(audio, visual, motion, y, y.clone(), y.clone(), ratios), 0)
    torch.manual_seed(7)                    # the same dropout masks: training mode, no gradient, cross off
    with torch.no_grad():
        out = model(audio, visual, motion, cross=False)
    _, t_v, _ = targets(job.recipe, y, y, y, 0)
    l_a, l_v = detection_losses(out["a_prob"], out["v_prob"], y, t_v)
    remove_a, remove_v = removals(l_a, l_v, y, ratios[0], ratios[1])
    assert remove_a.any() and remove_v.any()
    assert torch.equal(got.y_a, torch.where(remove_a, 0.0, y)) and torch.equal(got.y_v, torch.where(remove_v, 0.0, y))
    assert torch.equal(got.y, y)            # the weak labels (the global target) never change
    # The targets the gradient pass then gets: a removed visual label is a hard 0, the rest as HAN smooths.
    t_a2, t_v2, t_g2 = targets(job.recipe, got.y, got.y_a, got.y_v, 0)
    assert torch.equal(t_g2, y) and torch.equal(t_a2, got.y_a)
    assert (t_v2[remove_v] == 0).all() and torch.allclose(t_v2[~remove_v], t_v[~remove_v])


def test_the_epochs_schedule_follows_the_recipes_warm_up():
    from avvp.training import label_sources
    from avvp.training.train import epoch_schedule

    rule = label_sources.per_batch("jomold")
    r = torch.full((2, 25), 0.4, dtype=torch.float64)
    released, ramp = jomold_job(), jomold_job(denoise={"warmup": "ramp", "warmup_epochs": 0.9})
    assert epoch_schedule(released, rule, r, 300, 0).shape == (3, 2, 25)   # 300 videos, batch 128: 3 batches
    assert (epoch_schedule(released, rule, r, 300, 0) == 0).all()
    assert all(torch.equal(x, r) for x in epoch_schedule(released, rule, r, 300, 1))
    got = [x[0, 0].item() for x in epoch_schedule(ramp, rule, r, 300, 0)]    # r t / (0.9 * 3)
    assert got == pytest.approx([0.0, 0.4 / 2.7, 0.8 / 2.7])
    assert epoch_schedule(released, None, r, 300, 0) is None



# --- stage 3 under main's graphed step: the batch's index is the step's only input ---------------------
def fit_denoising(packed, out, row_name, ratios, runner=None, monkeypatch=None, n=50, epochs=3):
    """fit `row_name` on the first `n` training videos with `ratios` (2, C), batch 16 (a partial last batch of
    2), the ramp warm-up over 2 epochs (so the ratios change from batch to batch and epoch to epoch); `runner`
    (a StepRunner test double) replaces the runner fit builds, graphs on."""
    from avvp import variants
    from avvp.data import dataset
    from avvp.training import train as train_module

    row = variants.get(row_name)
    ramp = {"warmup": "ramp", "warmup_epochs": 2}
    row = dataclasses.replace(row, recipe={**row.recipe, "batch": 16, "denoise": ramp})
    job = train_module.Job.of(row, seed=3, epochs=epochs, cuda_graphs=runner is not None)
    if runner is not None:
        monkeypatch.setattr(train_module, "StepRunner", runner)
    full = dataset.load_split(packed, "train")
    part = dataset.Split(name="train", filenames=full.filenames[:n], audio=full.audio[:n], visual=full.visual[:n],
                         motion=full.motion[:n], labels=full.labels[:n])
    return train_module.fit(job, part, part.labels, part.labels, dataset.load_split(packed, "val"), out, quiet=True,
                            values=ratios)


@pytest.mark.parametrize("row_name", ["JoMoLD", "CMPAE"])
@pytest.mark.parametrize("replayed", ["Replaying", "ReplayingSilently"])
def test_replayed_steps_read_each_batchs_ratios_and_parity_inside_the_step(packed_tiny, tmp_path, monkeypatch,
                                                                            row_name, replayed):
    """Main's design (issue 15 defect 9): a graph replays the step first seen per (phase, batch shape), its only
    input the batch's videos' index. The ratios in force (the epoch's schedule, refilled each epoch) and the
    step's index (JML's parity) are read inside the step: replays give the eager run's losses and weights."""
    import test_train

    torch.set_num_threads(1)
    ratios = torch.full((2, 25), 0.5, dtype=torch.float64)
    m_eager, eager = fit_denoising(packed_tiny, tmp_path / "eager", row_name, ratios)
    _, none = fit_denoising(packed_tiny, tmp_path / "none", row_name, torch.zeros(2, 25, dtype=torch.float64))
    test_train.Replaying.calls = []
    m_rep, rep = fit_denoising(packed_tiny, tmp_path / "replayed", row_name, ratios,
                               getattr(test_train, replayed), monkeypatch)
    assert test_train.without_times(rep.log) == test_train.without_times(eager.log)
    assert all(torch.equal(a, b) for a, b in zip(m_rep.state_dict().values(), m_eager.state_dict().values()))
    assert {tuple(c) for c in test_train.Replaying.calls} == {((torch.int64, (16,)),), ((torch.int64, (2,)),)}
    # the ratios do act (epoch 1 of the ramp already removes labels): a run without them trains otherwise
    assert test_train.without_times(none.log) != test_train.without_times(eager.log)


# --- the three stages end to end, resume, bad input -----------------------------------------------------
def cli(*args):
    from avvp.cli import main

    return main([*map(str, args)])


ESTIMATOR = "JoMoLD noise estimator"


def stage_args(packed, variant, epochs=3):
    return ["--variant", variant, "--seed", "1", "--data", str(packed), "--epochs", str(epochs), "--threads", "1"]


@pytest.fixture(scope="module")
def stages(packed_tiny, tmp_path_factory):
    """Stage 1 (the estimator, 3 epochs), stage 2 (its ratios) and stage 3 (JoMoLD, 3 epochs) on tiny, seed 1."""
    root = tmp_path_factory.mktemp("jomold")
    assert cli("train", *stage_args(packed_tiny, ESTIMATOR), "--out", root / "estimator") == 0
    assert cli("noise-ratios", "--run", root / "estimator", "--data", packed_tiny, "--seed", 1,
               "--out", root / "noise_ratios.json", "--threads", 1) == 0
    assert cli("train", *stage_args(packed_tiny, "JoMoLD"), "--ratios", root / "noise_ratios.json",
               "--out", root / "jomold") == 0
    return root


def test_stage1_selects_on_validation_audio_event_f_with_cross_attention_off(stages):
    run = json.loads((stages / "estimator" / "run.json").read_text())
    done = json.loads((stages / "estimator" / "done.json").read_text())
    assert run["spec"]["cross_attention"] == "off" and run["select"] == "val_audio_event"
    assert run["recipe"]["loss_weights"] == {"audio": 1, "visual": 1, "global": 1}
    assert done["selected_by"] == "val event audio"
    values = [row["val_event_audio"] for row in csv_rows(stages / "estimator" / "log.csv")]
    best = max(values)
    assert done["selected_epoch"] == max(i + 1 for i, v in enumerate(values) if v == best)   # ties: the later


def csv_rows(path):
    import csv

    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_stage2_file_counts_and_truth(stages, packed_tiny):
    record = json.loads((stages / "noise_ratios.json").read_text())
    labels = np.load(packed_tiny / "train" / "labels.npy")
    assert record["positives"] == labels.sum(axis=0).tolist() and record["batches"] == 1   # 64 videos, batch 128
    for part in ("audio", "visual"):
        assert record[part]["ratio"] == [k / n if n else 0.0 for k, n in zip(record[part]["noisy"], record["positives"])]
    true_audio = np.load(packed_tiny / "train" / "true_audio.npy")
    n = labels.sum(axis=0)
    expected = [float(k) / c if c else 0.0 for k, c in zip(((labels > 0) & (true_audio == 0)).sum(axis=0), n)]
    assert record["truth_absent"]["audio"] == pytest.approx(expected)
    assert record["estimator"]["variant"] == ESTIMATOR
    # Deterministic: the pass again gives the same file content.
    assert cli("noise-ratios", "--run", stages / "estimator", "--data", packed_tiny, "--seed", 1,
               "--out", stages / "again.json", "--threads", 1) == 0
    assert (stages / "again.json").read_text() == (stages / "noise_ratios.json").read_text()


def test_stage3_records_its_ratios_file_and_recipe(stages):
    run = json.loads((stages / "jomold" / "run.json").read_text())
    assert run["labels"] == "jomold" and run["recipe"]["denoise"]["warmup"] == "released"
    assert run["inputs"]["ratios"] and run["ratios"].endswith("noise_ratios.json")
    assert "loss_jomold_contrast" in csv_rows(stages / "jomold" / "log.csv")[0]


@pytest.mark.parametrize("stage", ["estimator", "jomold"])
def test_killed_stage_resumes_to_the_uninterrupted_result(stages, packed_tiny, tmp_path, stage):
    from test_train import kill_after_first_checkpoint

    variant, extra = (ESTIMATOR, []) if stage == "estimator" else ("JoMoLD", ["--ratios", str(stages / "noise_ratios.json")])
    cut = tmp_path / "cut"
    cmd = [sys.executable, "-m", "avvp", "train", *stage_args(packed_tiny, variant), *extra, "--out", str(cut)]
    kill_after_first_checkpoint(cmd, cut)
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stdout
    whole, resumed = (json.loads((r / "done.json").read_text()) for r in (stages / stage, cut))
    assert resumed["selected"] == whole["selected"] and resumed["selected_epoch"] == whole["selected_epoch"]
    wa, wb = torch.load(stages / stage / "best.pt"), torch.load(cut / "best.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_jomold_row_without_ratios_names_both_commands(packed_tiny, tmp_path, capsys):
    assert cli("train", *stage_args(packed_tiny, "JoMoLD"), "--out", tmp_path / "r") == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--ratios results/jomold/seed1/noise_ratios.json" in err
    assert f"avvp train --variant '{ESTIMATOR}'" in err and "avvp noise-ratios --run" in err
    assert not (tmp_path / "r" / "run.json").exists()


def test_bad_ratios_file_and_untrained_estimator_are_one_line(packed_tiny, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1, "audio": {"ratio": [0.1] * 25}, "visual": {"ratio": [0.1] * 3}}))
    assert cli("train", *stage_args(packed_tiny, "JoMoLD"), "--ratios", bad, "--out", tmp_path / "r") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.json: visual.ratio must be a list of 25 numbers" in err
    assert not (tmp_path / "r").exists()
    assert cli("noise-ratios", "--run", tmp_path / "none", "--data", packed_tiny, "--out", tmp_path / "x.json") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a trained run" in err and not (tmp_path / "x.json").exists()


def test_denoise_quality_scores_the_removals_as_mas_refinement(stages, packed_tiny):
    out = stages / "quality.json"
    assert cli("denoise-quality", "--run", stages / "jomold", "--ratios", stages / "noise_ratios.json",
               "--data", packed_tiny, "--seed", 1, "--out", out, "--threads", 1) == 0
    got = json.loads(out.read_text())
    labels = np.load(packed_tiny / "train" / "labels.npy")
    assert got["removed"]["labels"] == int(labels.sum())
    for m in ("audio", "visual"):
        truth = got["against_truth"][m]
        assert truth["removals"] == got["removed"][m]
        # should_remove: the training labels the synthetic truth says are absent from m.
        true = np.load(packed_tiny / "train" / f"true_{m}.npy")
        assert truth["should_remove"] == int(((labels > 0) & (true == 0)).sum())
        for split in ("val", "test"):
            assert "removals" in got["against_annotations"][split][m]
    # The same pass again: the same file (batch order and dropout masks from the seed).
    assert cli("denoise-quality", "--run", stages / "jomold", "--ratios", stages / "noise_ratios.json",
               "--data", packed_tiny, "--seed", 1, "--out", stages / "q2.json", "--threads", 1) == 0
    assert (stages / "q2.json").read_text() == out.read_text()


def test_noise_ratios_table_beside_the_truth_by_hand(tmp_path, capsys, monkeypatch):
    """bench/noise_ratios_table.py: per class the mean over seeds of the estimate beside the truth, the means over
    classes and the rank correlation (1 when the estimate orders the classes as the truth does)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "bench"))
    import noise_ratios_table

    from avvp.constants import CLASSES
    from avvp.methods.jomold import ratios_file

    truth = {"audio": [0.01 * (c + 1) for c in range(25)], "visual": [0.5 - 0.01 * c for c in range(25)]}
    for seed, scale in ((0, 0.5), (1, 1.5)):      # the mean over the two seeds is the truth itself
        record = {"classes": list(CLASSES), "audio": {"ratio": [scale * r for r in truth["audio"]]},
                  "visual": {"ratio": [scale * r for r in truth["visual"]]}, "truth_absent": truth}
        f = ratios_file(seed, tmp_path)
        f.parent.mkdir(parents=True)
        f.write_text(json.dumps(record))
    noise_ratios_table.main(["--results", str(tmp_path), "--seeds", "0", "1", "2"])
    out = capsys.readouterr().out
    assert "seeds 0, 1;" in out                    # seed 2 has no file: left out, and said so by the header
    assert f"| {CLASSES[0]} | 0.010 | 0.010 | 0.500 | 0.500 |" in out
    assert f"| {CLASSES[24]} | 0.250 | 0.250 | 0.260 | 0.260 |" in out
    assert "| mean over classes | 0.130 | 0.130 | 0.380 | 0.380 |" in out
    assert "audio 1.00, visual 1.00" in out
    with pytest.raises(SystemExit, match="no results/jomold"):
        noise_ratios_table.main(["--results", str(tmp_path / "none")])


def test_ratios_as_the_releases_ship_them_train_like_the_projects_own(stages, packed_tiny, tmp_path, capsys):
    """Issue 31, item 1: CMPAE ships its ratios as noise_ratios.npz (arrays `audio` and `visual` of 25); `avvp train
    --ratios` read only the project's JSON ("not text"). One reader, the same checks, for either format."""
    r_a, r_v = read_ratios(stages / "noise_ratios.json")
    np.savez(tmp_path / "noise_ratios.npz", audio=r_a.numpy(), visual=r_v.numpy())
    a2, v2 = read_ratios(tmp_path / "noise_ratios.npz")
    assert torch.equal(a2, r_a) and torch.equal(v2, r_v) and a2.dtype == torch.float64
    assert cli("train", *stage_args(packed_tiny, "JoMoLD", epochs=1), "--ratios", tmp_path / "noise_ratios.npz",
               "--out", tmp_path / "npz") == 0
    assert cli("train", *stage_args(packed_tiny, "JoMoLD", epochs=1), "--ratios", stages / "noise_ratios.json",
               "--out", tmp_path / "json") == 0
    by = {r: json.loads((tmp_path / r / "done.json").read_text())["selected"] for r in ("npz", "json")}
    assert by["npz"] == by["json"]                       # the same ratios, the same run
    # every bad input one line naming the file, nothing written
    for name, arrays, message in (("short.npz", {"audio": np.zeros(24), "visual": np.zeros(25)},
                                   "audio.ratio must be a list of 25 numbers"),
                                  ("range.npz", {"audio": np.full(25, 1.5), "visual": np.zeros(25)},
                                   "audio.ratio[0] (Speech) = 1.5 is not a number in [0, 1]"),
                                  ("nokey.npz", {"audio": np.zeros(25)}, "no array visual")):
        np.savez(tmp_path / name, **arrays)
        capsys.readouterr()
        assert cli("train", *stage_args(packed_tiny, "JoMoLD", epochs=1), "--ratios", tmp_path / name,
                   "--out", tmp_path / f"bad_{name}") == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"{tmp_path / name}: " in err and message in err, err
        assert not (tmp_path / f"bad_{name}").exists()


def test_an_estimator_epoch_trains_every_video_the_short_last_batch_included(monkeypatch):
    """Issue 31's reading: at batch 128 the estimator's 5 default epochs are 80 steps, and 5 steps fewer (the short
    last batch dropped) cost about 2 points of segment Type@AV and double the spread over seeds. An epoch of the
    default's 2,000 videos is 16 steps, the last of 80 videos, and the warm-up counts the same 16 iterations."""
    from avvp import variants
    from avvp.training import train as train_module

    job = train_module.Job.of(variants.get(ESTIMATOR), seed=0, epochs=1)
    sizes = []

    class Counting(train_module.StepRunner):
        def __call__(self, step, batch, key=()):
            sizes.append(len(batch[0]))
            return {}

    monkeypatch.setattr(train_module, "StepRunner", Counting)
    g = torch.Generator().manual_seed(0)
    n = 2000
    split = dataset_split(n, g)
    run = train_module.Trainer.of(job)
    train_module.train_epoch(run, job, split, split.labels, split.labels, 0)
    assert sizes == [128] * 15 + [80] and sum(sizes) == n
    assert iterations_per_epoch(n, job.recipe["batch"]) == len(sizes) == 16


def dataset_split(n, g):
    from avvp.data import dataset

    labels = (torch.rand(n, 25, generator=g) < 0.1).float()
    return dataset.Split(name="train", filenames=[str(i) for i in range(n)], labels=labels,
                         audio=torch.zeros(n, 10, 128), visual=torch.zeros(n, 10, 2048), motion=torch.zeros(n, 10, 512))
