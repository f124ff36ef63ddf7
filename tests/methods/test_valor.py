"""VALOR (avvp/methods/valor/, docs/methods/valor.md): its model against the release's facts, the pseudo-label
reader on hand-made files, the simulated teacher's quality knob, the loss by hand, the warm-up + cosine schedule,
the strict selection, and a killed run resuming to the uninterrupted result."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from avvp import variants
from avvp.cli import main
from avvp.errors import AvvpError
from avvp.methods.valor import pseudo_labels
from avvp.methods.valor.losses import pseudo_label_loss
from avvp.methods.valor.model import MultiHeadHybrid, ValorEncoder
from avvp.methods.valor.schedule import rate
from avvp.models import build


# --- the model -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, released, dead", [("VALOR", 5_096_523, 2_048), ("VALOR+ (4 layers)", 5_052_235, 1_024)])
def test_parameters_are_the_releases_less_its_dead_norms(name, released, dead):
    """SPEC: the reference model counts VALOR 5,096,523 and VALOR+ 5,052,235 parameters, of which the encoder's two
    final LayerNorms (2 x 2d, applied only under pre-norm) are dead in every released configuration."""
    model = build(variants.get(name).model)
    assert sum(p.numel() for p in model.parameters()) == released - dead


def test_sequential_stacking_updates_visual_from_the_updated_audio():
    """As released: inside a layer, audio first, a' = L(a, v), then visual from the UPDATED audio, v' = L(v, a');
    `parallel` is HAN's layer (both from the layer's inputs)."""
    torch.manual_seed(0)
    seq = ValorEncoder(16, 2, 32, 2, "sequential", 0.0).eval()
    par = ValorEncoder(16, 2, 32, 2, "parallel", 0.0).eval()
    par.load_state_dict(seq.state_dict())
    a, v = torch.randn(3, 10, 16), torch.randn(3, 10, 16)
    with torch.no_grad():
        x_a, x_v = a, v
        for layer in seq.layers:
            x_a = layer(x_a, x_v)
            x_v = layer(x_v, x_a)
        got = seq(a, v)
        assert torch.equal(got[0], x_a) and torch.equal(got[1], x_v)
        y_a, y_v = a, v
        for layer in par.layers:
            y_a, y_v = layer(y_a, y_v), layer(y_v, y_a)
        assert torch.allclose(par(a, v)[0], y_a, atol=1e-6) and torch.allclose(par(a, v)[1], y_v, atol=1e-6)
        assert not torch.allclose(got[1], par(a, v)[1])
    assert isinstance(seq.layers[0], MultiHeadHybrid) and seq.layers[0].self_attn.num_heads == 2


def test_the_forward_exposes_the_frame_logits_whose_sigmoid_is_the_frame_probability():
    model = build(variants.get("VALOR").model).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        out = model(torch.randn(2, 10, 128, generator=g), torch.randn(2, 80, 2048, generator=g),
                    torch.randn(2, 10, 512, generator=g))
    assert out["frame_logit"].shape == (2, 10, 2, 25)
    assert torch.allclose(torch.sigmoid(out["frame_logit"]), out["frame_prob"])
    assert out["global_prob"].shape == (2, 25)
    with pytest.raises(AvvpError, match="head 'valor' needs backbone 'valor'"):
        build({"backbone": "han", "head": "valor"})


# --- the pseudo-labels -----------------------------------------------------------------------------------------
def write_released(root, filenames, arrays=None):
    arrays = arrays or {}
    for modality, folder in pseudo_labels.FOLDERS.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(filenames):
            a = arrays.get((modality, i), np.eye(10, 25, k=i, dtype=np.int64))
            np.save(root / folder / f"{f[:11]}.npy", a)


FILES = ["abcdefghijk_0_10", "lmnopqrstuv_30_40"]


def test_released_files_are_read_in_valors_layout(tmp_path):
    write_released(tmp_path, FILES)
    got = pseudo_labels.read_released(tmp_path, FILES)
    assert got["audio"].dtype == np.uint8 and got["visual"].shape == (2, 10, 25)
    assert (got["audio"][1] == np.eye(10, 25, k=1)).all()


@pytest.mark.parametrize("bad, message", [
    ("folder", "CLAP/segment_pseudo_labels: no such folder"),
    ("file", "lmnopqrstuv.npy: missing (1 of 2 videos have no audio pseudo-labels)"),
    ("float", "pseudo-labels of dtype float32, expected integers"),
    ("shape", "pseudo-labels of shape (25, 10), expected (10, 25)"),
    ("values", "pseudo-labels hold values other than 0 and 1"),
    ("garbage", "unreadable pseudo-labels"),
])
def test_every_bad_pseudo_label_file_is_one_line_naming_it(tmp_path, bad, message):
    write_released(tmp_path, FILES)
    audio = tmp_path / pseudo_labels.FOLDERS["audio"]
    target = audio / f"{FILES[1][:11]}.npy"
    if bad == "folder":
        import shutil

        shutil.rmtree(audio)
    elif bad == "file":
        target.unlink()
    elif bad == "float":
        np.save(target, np.zeros((10, 25), np.float32))
    elif bad == "shape":
        np.save(target, np.zeros((25, 10), np.int64))
    elif bad == "values":
        np.save(target, np.full((10, 25), 2, np.int64))
    else:
        target.write_bytes(b"not an npy file at all")
    with pytest.raises(AvvpError) as e:
        pseudo_labels.read_released(tmp_path, FILES)
    assert "\n" not in str(e.value) and message in str(e.value)


@pytest.mark.parametrize("miss, add", [(0.0, 0.0), (0.2, 0.2), (0.4, 0.1)])
def test_the_teachers_quality_knob_is_what_was_asked(miss, add):
    """Within the weak-label classes a true second is kept with probability 1 - miss and a false one added with
    probability `add` (measured over ~50,000 cells each); outside them nothing."""
    rng = np.random.default_rng(0)
    n = 2000
    truth = (rng.random((n, 10, 25)) < 0.4).astype(np.uint8)
    weak = rng.random((n, 25)) < 0.2
    pl = pseudo_labels.teacher(truth, weak, miss, add, np.random.default_rng(1))
    inside = np.broadcast_to(weak[:, None, :], truth.shape)
    assert not pl[~inside].any()
    true, false = inside & (truth > 0), inside & (truth == 0)
    assert abs(1 - pl[true].mean() - miss) < 0.01 and abs(pl[false].mean() - add) < 0.01
    if miss == add == 0.0:
        assert np.array_equal(pl, truth * inside)


def test_the_synthetic_truth_is_the_packed_datas(packed_tiny):
    """The generator's draws again: val and test equal the packed dense annotations, the training split's true
    modalities the packed truth (a video-level summary of its seconds)."""
    from avvp.data import dataset

    truth = pseudo_labels.synthetic_truth(packed_tiny)
    train = dataset.load_split(packed_tiny, "train")
    assert truth["train"]["filenames"] == train.filenames
    assert np.array_equal(truth["train"]["audio"].any(axis=1), np.asarray(train.true_audio) > 0)
    test = dataset.load_split(packed_tiny, "test")
    assert np.array_equal(truth["test"]["visual"].transpose(0, 2, 1), np.asarray(test.gt_visual) > 0)


def test_valor_labels_writes_the_truth_and_the_default_teachers_quality(packed_tiny, tmp_path):
    assert main(["valor-labels", "--data", str(packed_tiny), "--out", str(tmp_path / "v")]) == 0
    z = np.load(tmp_path / "v" / "pseudo_labels.npz")
    assert str(z["kind"]) == "truth" and z["audio"].shape == (64, 10, 25)
    summary = json.loads((tmp_path / "v" / "summary.json").read_text())
    assert summary["teacher"] == {"miss": 0.2, "add": 0.2, "seed": 0}
    seg = summary["quality"]["test"]["segment"]
    assert 60 < seg["audio"] < 95 and 0 < seg["type_av"] < 100


# --- the loss, the schedule, the selection ---------------------------------------------------------------------
def test_the_pseudo_label_loss_by_hand():
    """BCEwithLogits on each modality's frame logits against its pseudo-labels, a mean over B x T x C each."""
    logit = torch.zeros(1, 2, 2, 1)
    logit[0, 0, 0, 0], logit[0, 1, 1, 0] = 2.0, -1.0
    pl_a = torch.tensor([[[1.0], [0.0]]])
    pl_v = torch.tensor([[[0.0], [1.0]]])
    sp = lambda x: math.log1p(math.exp(x))                         # noqa: E731  softplus
    audio = (sp(-2.0) + sp(0.0)) / 2                               # target 1 at logit 2, target 0 at logit 0
    visual = (sp(0.0) + sp(1.0)) / 2                               # target 0 at logit 0, target 1 at logit -1
    assert pseudo_label_loss(logit, pl_a, pl_v).item() == pytest.approx(audio + visual, rel=1e-6)


def test_the_warm_up_and_cosine_values():
    """As released (60 epochs, warm-up 10, peak 1e-4, min 1e-6): epoch 1 trains at 1e-5, the peak at epoch 10,
    halfway at epoch 35, the minimum at epoch 60; E = W keeps the peak (where the release divides by zero)."""
    values = [rate(e, 60, 10, 1e-4, 1e-6) for e in (1, 9, 10, 35, 60)]
    assert values == pytest.approx([1e-5, 9e-5, 1e-4, 1e-6 + (1e-4 - 1e-6) / 2, 1e-6])
    assert rate(5, 5, 5, 1e-4, 1e-6) == 1e-4


def test_the_schedule_runs_in_the_trainer_and_a_short_run_scales_its_warm_up():
    from avvp.training import train

    row = variants.get("VALOR")
    for epochs, warm in ((60, 10), (12, 2)):
        job = train.Job.of(row, seed=0, epochs=epochs)
        optim, sched = train.optimiser(job, torch.nn.Linear(2, 2))
        assert isinstance(optim, torch.optim.AdamW) and optim.defaults["betas"] == (0.5, 0.999)
        assert optim.defaults["weight_decay"] == 1e-3
        seen = []
        for _ in range(epochs):
            seen.append(optim.param_groups[0]["lr"])
            optim.step()
            sched.step()
        assert seen == pytest.approx([rate(e, epochs, warm, 1e-4, 1e-6) for e in range(1, epochs + 1)])


def test_the_selection_is_strict_a_tie_keeps_the_earlier_epoch():
    from avvp.registry import SELECTION_RULES

    row = variants.get("VALOR")
    rule = SELECTION_RULES.get(row.recipe["select"])
    assert row.recipe["select"] == row.recipe["released_select"] == "val"
    assert not rule.improves(62.0, 62.0) and rule.improves(62.1, 62.0)


# --- training on its labels, and resuming ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def labels(packed_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("valor")
    assert main(["valor-labels", "--data", str(packed_tiny), "--out", str(out)]) == 0
    return out / "pseudo_labels.npz"


def valor_train(packed, labels, out, variant="VALOR", epochs=3):
    return [sys.executable, "-m", "avvp", "train", "--variant", variant, "--seed", "1", "--data", str(packed),
            "--epochs", str(epochs), "--threads", "1", "--pseudo-labels", str(labels), "--out", str(out)]


def test_a_killed_valor_run_resumes_to_the_uninterrupted_result(packed_tiny, labels, tmp_path):
    from test_train import kill_after_first_checkpoint

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert subprocess.run(valor_train(packed_tiny, labels, whole), capture_output=True).returncode == 0
    kill_after_first_checkpoint(valor_train(packed_tiny, labels, cut), cut)
    res = subprocess.run(valor_train(packed_tiny, labels, cut), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stdout
    a, b = (json.loads((r / "done.json").read_text()) for r in (whole, cut))
    assert a["selected"] == b["selected"] and a["selected_epoch"] == b["selected_epoch"]
    wa, wb = torch.load(whole / "best.pt"), torch.load(cut / "best.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    log = (whole / "log.csv").read_text()
    assert "loss_valor_pl" in log and "loss_bce" in log


def test_the_oracle_teacher_trains_on_other_labels_than_the_default(packed_tiny, labels):
    """The row's teacher acts on the file's truth: the oracle (miss 0, add 0) gets the weak classes' true seconds,
    the default 0.2 / 0.2 others; a released file would be taken as it is."""
    from avvp.data import dataset
    from avvp.training import label_sources

    train = dataset.load_split(packed_tiny, "train")
    files = {"pseudo_labels": str(labels)}
    default = label_sources.load("valor", train, files, "", "", 0, variants.get("VALOR").recipe)
    oracle = label_sources.load("valor", train, files, "", "", 0, variants.get("VALOR (oracle PLs)").recipe)
    truth = np.load(labels)
    weak = train.labels.numpy()[:, None, :] > 0
    assert np.array_equal(oracle[0].numpy(), (truth["audio"] > 0) & weak)
    assert not torch.equal(default[0], oracle[0]) and default[0].shape == (64, 10, 25)
