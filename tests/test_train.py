"""Training: determinism, resume after a kill, clear errors; evaluation writes the `avvp score` schema."""

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp.cli import main

KEYS = {"audio", "visual", "audio_visual", "type_av", "event_av"}


def train(packed, out, variant="HAN", epochs=2, *extra):
    return main(["train", "--variant", variant, "--seed", "3", "--data", str(packed), "--out", str(out),
                 "--epochs", str(epochs), "--threads", "1", *extra])


def kill_after_first_checkpoint(cmd: list[str], cut) -> None:
    """Start `avvp train` and SIGKILL it as soon as its first epoch's last.pt exists (mid-run, not at its end)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not (cut / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"

def test_same_seed_same_weights_and_metrics(packed_tiny, tmp_path):
    assert train(packed_tiny, tmp_path / "a") == 0
    assert train(packed_tiny, tmp_path / "b") == 0
    wa = torch.load(tmp_path / "a" / "best.pt")
    wb = torch.load(tmp_path / "b" / "best.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    da, db = (json.loads((tmp_path / r / "done.json").read_text()) for r in "ab")
    assert da["selected"] == db["selected"] and da["selected_epoch"] == db["selected_epoch"]
    log = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert len(log) == 3 and "loss_bce" in log[0] and "val_segment_type_av" in log[0]


def test_second_call_is_a_no_op(packed_tiny, tmp_path, capsys):
    assert train(packed_tiny, tmp_path / "r", "HAN", 1) == 0
    stamp = (tmp_path / "r" / "best.pt").stat().st_mtime_ns
    assert train(packed_tiny, tmp_path / "r", "HAN", 1) == 0
    assert "already trained" in capsys.readouterr().out
    assert (tmp_path / "r" / "best.pt").stat().st_mtime_ns == stamp


def test_changing_the_graphs_switch_retrains_and_run_json_says_what_trained(packed_tiny, tmp_path, capsys):
    """A graphed and an eager step draw random numbers in another order on a GPU, so `--graphs` is part of the
    job: Snakemake reruns a job whose `cuda_graphs` changed (deleting its done.json first), and the rerun must
    train again, not resume the other setting's finished checkpoint and relabel it."""
    out = tmp_path / "r"
    assert train(packed_tiny, out, "HAN", 1, "--graphs", "off") == 0
    (out / "done.json").unlink()                    # what Snakemake does before it reruns the job
    assert train(packed_tiny, out, "HAN", 1, "--graphs", "on") == 0
    assert "starting over" in capsys.readouterr().out
    assert (out / "last.stale.pt").exists()
    done, run = (json.loads((out / name).read_text()) for name in ("done.json", "run.json"))
    assert done["epochs_run"] == 1 and len((out / "log.csv").read_text().splitlines()) == 2
    assert done["job"]["cuda_graphs"] is True and run["cuda_graphs"] is True
    assert torch.load(out / "last.pt", weights_only=False)["job"]["cuda_graphs"] is True
    assert train(packed_tiny, out, "HAN", 1, "--graphs", "on") == 0   # the same setting again: nothing to do
    assert "already trained" in capsys.readouterr().out


def test_killed_run_resumes_to_the_same_result(packed_tiny, tmp_path):
    """SIGKILL a run after its first epoch's checkpoint, start it again: same metrics as uninterrupted.

    HAN + CM-S from epoch 3 on: the resumed part draws CM-S's batch pairings and dropout from restored RNGs.
    """
    args = ["--variant", "HAN + CM-S", "--seed", "1", "--data", str(packed_tiny), "--epochs", "4", "--threads", "1"]
    assert main(["train", *args, "--out", str(tmp_path / "whole")]) == 0

    cut = tmp_path / "cut"
    cmd = [sys.executable, "-m", "avvp", "train", *args, "--out", str(cut)]
    kill_after_first_checkpoint(cmd, cut)
    assert not (cut / "done.json").exists()

    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stdout
    whole, resumed = (json.loads((tmp_path / r / "done.json").read_text()) for r in ("whole", "cut"))
    assert resumed["selected"] == whole["selected"]
    assert resumed["selected_epoch"] == whole["selected_epoch"]
    wa, wb = torch.load(tmp_path / "whole" / "best.pt"), torch.load(cut / "best.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_corrupt_checkpoint_starts_the_run_over_in_one_line(packed_tiny, tmp_path, capsys):
    """A foreign last.pt is no resume point: the run says so once and starts over (tests/test_faults.py: a
    truncated one, and the result equal to an uninterrupted run's)."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "last.pt").write_bytes(b"not a checkpoint")
    assert train(packed_tiny, out, "HAN", 1) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "last.pt" in line]
    assert said == [f"{out / 'last.pt'}: unreadable checkpoint (UnpicklingError); starting the run over"], said
    assert (out / "done.json").exists()


def test_unknown_variant_and_missing_data(packed_tiny, tmp_path, capsys):
    assert train(packed_tiny, tmp_path / "r", "HAN 9 Layers") == 1
    assert "unknown variant 'HAN 9 Layers'" in capsys.readouterr().err
    assert train(tmp_path / "nowhere", tmp_path / "r") == 1
    assert "avvp pack" in capsys.readouterr().err


def test_refined_variant_names_the_command_that_makes_its_labels(packed_tiny, tmp_path, capsys):
    assert train(packed_tiny, tmp_path / "r", "MA*") == 1
    err = capsys.readouterr().err
    assert "avvp train --variant 'MA step 1'" in err and "avvp refine --run" in err and "--refined" in err


def test_evaluate_writes_score_schema_and_predictions(packed_tiny, tmp_path, capsys):
    run = tmp_path / "r"
    assert train(packed_tiny, run, "HAN", 1) == 0
    assert main(["evaluate", "--run", str(run), "--split", "test"]) == 0
    m = json.loads((run / "test" / "metrics.json").read_text())
    assert set(m) == {"segment", "event"} and set(m["segment"]) == KEYS and set(m["event"]) == KEYS
    z = np.load(run / "test" / "predictions.npz")
    n = len(z["filenames"])
    assert z["audio"].shape == (n, 25, 10) and set(np.unique(z["audio"])) <= {0, 1}
    assert z["pooled_audio"].shape == (n, 512) and z["frame_prob"].shape == (n, 10, 2, 25)
    # the same predictions scored by `avvp score` give the same numbers
    ann = Path(json.loads((Path(packed_tiny) / "source.json").read_text())["data"])
    out = tmp_path / "score.json"
    assert main(["score", "--annotations", str(ann), "--split", "test",
                 "--predictions", str(run / "test" / "predictions.npz"), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == m


def test_refine_then_train_on_refined_labels(packed_tiny, tmp_path):
    """MA's step 1 is a row like any other; `avvp refine` turns its run into the labels MA's rows train on."""
    ref, step1 = tmp_path / "refine", tmp_path / "step1"
    assert train(packed_tiny, step1, "MA step 1", 1) == 0
    assert main(["refine", "--run", str(step1), "--data", str(packed_tiny), "--seed", "0", "--out", str(ref),
                 "--threads", "1"]) == 0
    s = json.loads((ref / "summary.json").read_text())
    assert "against_truth" in s and set(s["removed"]) == {"audio", "visual"}
    z = np.load(ref / "refined_labels.npz")
    y = np.load(Path(packed_tiny) / "train" / "labels.npy")
    assert (z["audio"] <= y).all() and (z["visual"] <= y).all()
    assert train(packed_tiny, tmp_path / "ma", "MA", 1, "--refined", str(ref / "refined_labels.npz")) == 0


def test_changed_settings_start_over_and_keep_the_old_checkpoint(packed_tiny, tmp_path, capsys):
    run = tmp_path / "r"
    assert train(packed_tiny, run, "HAN", 1) == 0
    assert train(packed_tiny, run, "HAN", 2) == 0
    out = capsys.readouterr().out
    assert "starting over" in out and (run / "last.stale.pt").exists()
    assert json.loads((run / "done.json").read_text())["epochs_run"] == 2


# --- hand-made cases: targets, batch_loss, fit's arguments -------------------------------------------------------
from avvp import variants  # noqa: E402
from avvp.errors import AvvpError  # noqa: E402
from avvp.registry import SELECTION_RULES  # noqa: E402
from avvp.training.losses import Batch, mmil_bce  # noqa: E402
from avvp.training.train import Job, batch_loss, fit, targets  # noqa: E402

HAN_RECIPE = variants.get("HAN").recipe            # visual smoothing always, MIL target: the weak labels
OURS_RECIPE = variants.get("HAN + Ours").recipe    # smoothing in epochs 1-2 only, MIL target: the union
MA_RECIPE = variants.get("MA").recipe              # MA's step 3: smoothing always, MIL target: the refined audio


def labels_3():
    """One video, 3 classes: weak [1, 1, 1]; refinement kept class 0 in audio only, class 1 in visual only,
    and removed class 2 from both."""
    y = torch.tensor([[1.0, 1.0, 1.0]])
    return y, torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])


def test_targets_smooth_visual_in_epochs_1_2_only_under_ours():
    y, y_a, y_v = labels_3()
    for epoch in (0, 1):
        t_a, t_v, _ = targets(OURS_RECIPE, y, y_a, y_v, epoch)
        assert torch.equal(t_a, y_a)
        # 0.9 y_v + 0.05 as released: a weak label removed from visual (classes 0 and 2) gets 0.05 like any
        # negative, not MA's 0.
        torch.testing.assert_close(t_v, torch.tensor([[0.05, 0.95, 0.05]]))
    for epoch in (2, 3, 30):
        assert torch.equal(targets(OURS_RECIPE, y, y_a, y_v, epoch)[1], y_v)


def test_targets_smooth_always_under_han():
    y, y_a, y_v = labels_3()
    for epoch in (0, 2, 39):
        torch.testing.assert_close(targets(HAN_RECIPE, y, y_a, y_v, epoch)[1], torch.tensor([[0.0, 0.95, 0.0]]))
    weak_only = torch.tensor([[1.0, 0.0, 0.0]])
    # Without a refinement (y_v = y) nothing is removed: every class gets its smoothed label.
    torch.testing.assert_close(targets(HAN_RECIPE, weak_only, weak_only, weak_only, 5)[1],
                               torch.tensor([[0.95, 0.05, 0.05]]))


def test_mil_target_union_or_weak():
    y, y_a, y_v = labels_3()
    assert torch.equal(targets(OURS_RECIPE, y, y_a, y_v, 0)[2], torch.tensor([[1.0, 1.0, 0.0]]))  # a OR v
    assert torch.equal(targets(HAN_RECIPE, y, y_a, y_v, 0)[2], y)


def test_ma_recipe_targets_and_global_target_after_an_audio_removal():
    # Weak [1, 1, 1, 0]; the refinement removed class 1 from the audio, class 0 from the visual, class 2 from both.
    y = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    y_a = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    y_v = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    for epoch in (0, 5, 11):
        t_a, t_v, t_g = targets(MA_RECIPE, y, y_a, y_v, epoch)
        assert torch.equal(t_a, y_a)
        # Removed visual labels 0 (classes 0, 2), kept 0.95 (class 1), negatives 0.05 (class 3):
        # docs/methods/ma.md#ma-step-3.
        torch.testing.assert_close(t_v, torch.tensor([[0.0, 0.95, 0.0, 0.05]]))
        # One array in MA's code: the audio removals (1, 2) leave the global target; the visual-only removal (0)
        # does not. Class 1 is still a visual label, yet gone from the global target.
        assert torch.equal(t_g, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert MA_RECIPE["epochs"] == 12 and MA_RECIPE["lr"] == 3e-4 and MA_RECIPE["batch"] == 16
    assert (MA_RECIPE["step_size"], MA_RECIPE["gamma"], MA_RECIPE["dropout"]) == (10, 0.1, 0.1)
    assert variants.get("MA*").recipe_name == "ma" and variants.get("MA").losses == ("ma_contrast",)


def test_ma_recipe_selects_on_val_by_default_and_keeps_the_last_epoch_released(packed_tiny, tmp_path):
    assert Job.of(variants.get("MA*"), seed=0).select == "val"
    out = tmp_path / "ma"
    assert main(["train", "--variant", "HAN", "--variants-file", str(_ma_as_han(tmp_path)), "--data",
                 str(packed_tiny), "--out", str(out), "--epochs", "2", "--threads", "1",
                 "--protocol", "released"]) == 0
    done = json.loads((out / "done.json").read_text())
    assert done["selected_epoch"] == 2 and done["selected_by"] == "last epoch"
    assert "test_segment_type_av" not in (out / "log.csv").read_text()   # the test split is never scored


def _ma_as_han(tmp_path):
    """config/variants.yaml with HAN on the `ma` recipe (weak labels: no refinement needed to train it)."""
    import yaml
    data = yaml.safe_load(variants.DEFAULT_FILE.read_text())
    data["variants"]["HAN"]["recipe"] = "ma"
    path = tmp_path / "variants.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_tie_keeps_the_first_epoch_by_default_and_the_later_one_released():
    val, released = SELECTION_RULES.get("val"), SELECTION_RULES.get("released")
    assert not val.improves(50.0, 50.0) and val.improves(50.1, 50.0)
    assert released.improves(50.0, 50.0) and not released.improves(49.9, 50.0)
    # The released protocol early-stops on the TEST split, by event-level Type@AV, patience 10
    # (docs/protocol.md#released-protocol).
    assert (released.split, str(released.metric), released.patience) == ("test", "event type_av", 10)
    assert (val.split, str(val.metric), val.patience) == ("val", "segment type_av", None)
    assert SELECTION_RULES.get("last").split is None


class RowWise(torch.nn.Module):
    """A parser stand-in whose every output row depends on its own input row only; it records batch sizes."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))
        self.rows = []

    def forward(self, audio, visual, motion):
        self.rows.append(audio.shape[0])
        p_a, p_v = torch.sigmoid(self.w * audio[:, 0, :25]), torch.sigmoid(self.w * visual[:, 0, :25])
        x_a, x_v = self.w * audio[:, :, :8], self.w * visual[:, :, :8]
        att = self.w * torch.stack([audio[:, :, :25], visual[:, :, :25]], dim=2)
        return {"global_prob": (p_a + p_v) / 2, "a_prob": p_a, "v_prob": p_v, "frame_att_logit": att,
                "frame_prob": torch.sigmoid(att), "x_a": x_a, "x_v": x_v, "v_in": motion[:, :, :8] * self.w}


def hand_batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, 25, generator=g) < 0.2).float()
    y[:, 0] = 1
    return Batch(torch.randn(n, 10, 128, generator=g), torch.randn(n, 10, 2048, generator=g),
                 torch.randn(n, 10, 512, generator=g), y, y.clone(), y.clone())


def test_cms_only_from_its_start_epoch_and_bce_on_the_real_videos_only():
    job = Job.of(variants.get("HAN + Ours"), seed=0)
    start = job.recipe["cms"]["start_epoch"]            # 1-based, from config/variants.yaml
    batch, model = hand_batch(), RowWise()
    loss, terms = batch_loss(model, job, batch, start - 2, torch.Generator().manual_seed(0))
    assert model.rows == [4] and set(terms) == {"bce"} and torch.equal(loss, terms["bce"])

    loss, terms = batch_loss(model, job, batch, start - 1, torch.Generator().manual_seed(0))
    assert model.rows[-1] == 8 and set(terms) == {"bce", "cms"}
    # The BCE is that of the 4 real videos alone: the model is row-wise, so their rows are unchanged.
    t_a, t_v, t_g = targets(job.recipe, batch.y, batch.y_a, batch.y_v, start - 1)
    expected = mmil_bce(model(batch.audio, batch.visual, batch.motion), t_a, t_v, t_g)
    torch.testing.assert_close(terms["bce"], expected.detach(), rtol=0, atol=0)
    torch.testing.assert_close(loss.detach(), terms["bce"] + terms["cms"])
    assert terms["cms"] != 0


def test_fit_selecting_without_a_split_is_an_avvp_error(tmp_path):
    job = Job.of(variants.get("HAN"), seed=0, epochs=1)
    assert job.select == "val"
    with pytest.raises(AvvpError, match="needs a split"):
        fit(job, None, None, None, None, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- the step runner (avvp/training/graphs.py) inside fit: graph-shaped on CPU, the function of the eager step ---
from avvp.data import dataset  # noqa: E402
from avvp.training import train as train_module  # noqa: E402
from avvp.training.graphs import StepRunner  # noqa: E402


def fit_part(packed, out, row_name, graphs, n=50, epochs=3, **recipe):
    """fit `row_name` on the first `n` training videos (batch 16: a partial last batch of 2), `recipe` overrides."""
    row = variants.get(row_name)
    row = dataclasses.replace(row, recipe={**row.recipe, "batch": 16, **recipe})
    job = Job.of(row, seed=5, epochs=epochs, cuda_graphs=graphs)
    full = dataset.load_split(packed, "train")
    part = dataset.Split(name="train", filenames=full.filenames[:n], audio=full.audio[:n], visual=full.visual[:n],
                         motion=full.motion[:n], labels=full.labels[:n])
    return fit(job, part, part.labels, part.labels, dataset.load_split(packed, "val"), out, quiet=True)


def fit_tiny(packed, out, row_name, graphs, monkeypatch, n=50, epochs=3, **recipe):
    """fit on the first `n` training videos (batch 16: a partial last batch of 2) with `recipe` overrides;
    returns the model, the state and the step runners fit built."""
    runners = []

    class Recording(StepRunner):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            runners.append(self)

    monkeypatch.setattr(train_module, "StepRunner", Recording)
    model, state = fit_part(packed, out, row_name, graphs, n, epochs, **recipe)
    return model, state, runners


def without_times(log):
    return [{k: v for k, v in row.items() if "seconds" not in k} for row in log]


@pytest.mark.parametrize("row_name, recipe, keys", [
    ("HAN", {}, {(True, ())}),
    # CM-S from epoch 2: its doubled batch (and "+ Ours"'s smoothing in epochs 1-2 only) are phases of their own.
    ("HAN + CM-S", {"cms": {"weight": 0.85, "tau": 1.0, "start_epoch": 2}},
     {(True, ()), (True, ("cms",)), (False, ("cms",))}),
])
def test_graph_shaped_fit_gives_the_eager_metrics(packed_tiny, tmp_path, monkeypatch, row_name, recipe, keys):
    torch.set_num_threads(1)
    m_eager, s_eager, r_eager = fit_tiny(packed_tiny, tmp_path / "eager", row_name, False, monkeypatch, **recipe)
    m_graph, s_graph, r_graph = fit_tiny(packed_tiny, tmp_path / "graph", row_name, True, monkeypatch, **recipe)
    assert [r.mode for r in r_eager] == ["eager"] and [r.mode for r in r_graph] == ["graph"]
    # One static-buffer entry per phase and batch shape (16 videos, and the last 2).
    entries = r_graph[0].entries
    assert {key for key, _ in entries} == keys and {shapes[0][0][0] for _, shapes in entries} == {16, 2}
    assert len(entries) == 2 * len(keys)
    assert without_times(s_graph.log) == without_times(s_eager.log)  # losses, lr and val scores, every epoch
    assert s_graph.best == s_eager.best
    assert all(torch.equal(a, b) for a, b in zip(m_graph.state_dict().values(), m_eager.state_dict().values()))
    assert all(isinstance(row["lr"], float) for row in s_graph.log)


def test_killed_graph_shaped_run_resumes_to_the_eager_result(packed_tiny, tmp_path):
    """SIGKILL a `--graphs on` run after its first checkpoint and resume it: the metrics and weights of an
    uninterrupted eager run (the runner is rebuilt after the resume; CM-S from epoch 3 on)."""
    args = ["--variant", "HAN + CM-S", "--seed", "2", "--data", str(packed_tiny), "--epochs", "4", "--threads", "1"]
    assert main(["train", *args, "--out", str(tmp_path / "whole"), "--graphs", "off"]) == 0
    cut = tmp_path / "cut"
    cmd = [sys.executable, "-m", "avvp", "train", *args, "--out", str(cut), "--graphs", "on"]
    kill_after_first_checkpoint(cmd, cut)
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stdout
    whole, resumed = (json.loads((tmp_path / r / "done.json").read_text()) for r in ("whole", "cut"))
    assert resumed["selected"] == whole["selected"] and resumed["selected_epoch"] == whole["selected_epoch"]
    assert json.loads((cut / "run.json").read_text())["cuda_graphs"] is True
    wa, wb = torch.load(tmp_path / "whole" / "best.pt"), torch.load(cut / "best.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# --- issue 15: the GPU path's defects, each shown on CPU ---
from avvp.models import build  # noqa: E402
from avvp.training.graphs import deterministic  # noqa: E402

# Every kind of row: a row per backbone, frame head, label source and extra loss of the sheet (avvp.variants).
ROW_KINDS = variants.row_kinds()


class Replaying(StepRunner):
    """A test double of CUDA graphs on CPU: per (key, batch shapes) the step first seen is kept with static input
    buffers; every call copies the batch into them and runs the KEPT step (a replay re-runs the captured kernels,
    closures and all), writing its terms into the same output tensors each time, as graph.replay() does."""

    returns_terms = True
    calls: list = []

    def __init__(self, model, optim, mode="graph", **kw):
        super().__init__(model, optim, mode="static", **kw)
        self.kept: dict = {}

    def __call__(self, step, batch, key=()):
        Replaying.calls.append([(t.dtype, tuple(t.shape)) for t in batch])
        full = (key, tuple(tuple(t.shape) for t in batch))
        kept_step, static, outputs = self.kept.setdefault(full, [step, [t.clone() for t in batch], None])
        with torch.no_grad():
            for buf, t in zip(static, batch):
                buf.copy_(t)
        terms = kept_step(static)
        with torch.no_grad():
            if outputs is None:
                outputs = self.kept[full][2] = {k: v.clone() for k, v in terms.items()}
            for k, v in terms.items():
                outputs[k].copy_(v)
        return outputs if self.returns_terms else {}


class ReplayingSilently(Replaying):
    """A graph whose caller reads nothing it returns: the loss sums must be accumulated inside the step."""
    returns_terms = False


@pytest.mark.parametrize("runner", [Replaying, ReplayingSilently])
def test_logged_losses_survive_replays_that_overwrite_the_graphs_outputs(packed_tiny, tmp_path, monkeypatch, runner):
    """Issue 15 defect 2: the loss sums aliased a graph's static outputs, so each epoch's logged loss replaced step
    1 with step 2. Defect 9: the batch's index is the graph's only per-step input and the sums are accumulated
    inside the step (ReplayingSilently returns nothing)."""
    torch.set_num_threads(1)
    cms = {"cms": {"weight": 0.85, "tau": 1.0, "start_epoch": 2}}
    _, eager = fit_part(packed_tiny, tmp_path / "eager", "HAN + CM-S", False, **cms)
    monkeypatch.setattr(train_module, "StepRunner", runner)
    Replaying.calls = []
    _, replayed = fit_part(packed_tiny, tmp_path / "replayed", "HAN + CM-S", True, **cms)
    assert without_times(replayed.log) == without_times(eager.log)  # log.csv, progress line and done.json
    assert all("loss_bce" in row for row in replayed.log) and "loss_cms" in replayed.log[-1]
    assert {tuple(c) for c in Replaying.calls} == {((torch.int64, (16,)),), ((torch.int64, (2,)),)}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("row_name", ROW_KINDS)
def test_every_row_kinds_step_runs_under_strict_deterministic_mode(row_name, precision):
    """Issue 15 defect 5: strict mode raises on an op without a deterministic kernel (on CPU; the CUDA kernels'
    choice is bench/bench_gpu.py's same-seed-twice check)."""
    from avvp.training import label_sources

    job = Job.of(variants.get(row_name), seed=0, precision=precision)
    torch.manual_seed(0)
    model = build(job.spec)
    optim, _ = train_module.optimiser(job, model)
    epoch = job.recipe["cms"]["start_epoch"] - 1 if "cms" in job.losses else 0
    rule = label_sources.per_batch(job.labels)       # a denoising row's rule acts too, with ratios of 0.5
    batch = hand_batch(n=4)
    if rule is not None:
        batch = dataclasses.replace(batch, in_force=torch.full((2, 25), 0.5))
    y = label_sources.stand_in(job.labels, batch.y)                 # per second for VALOR's source
    batch = dataclasses.replace(batch, y_a=y, y_v=y.clone())
    try:
        deterministic(True)
        loss, terms = batch_loss(model, job, batch, epoch, torch.Generator().manual_seed(0), rule)
        loss.backward()
        optim.step()
    finally:
        deterministic(False)
    assert set(terms) == {"bce", *job.losses} and torch.isfinite(loss)


def test_evaluation_chunks_keep_cmco_attention_under_the_grid_limit():
    """Issue 15 defect 7: 4,096 videos per forward give CM-Co's attention 4,096 x 10 x 2 = 81,920 batch entries,
    above the 65,535 where flash attention fails (pytorch issue #146704)."""
    from avvp.evaluation.evaluate import chunk_size

    seen = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda m, args: seen.append(args[0].shape[0]) if isinstance(m, torch.nn.MultiheadAttention) else None)
    try:
        for name in ("HAN", "HAN + CM-Co", "HAN + A Only", "AVE"):
            model = build(variants.get(name).model).eval()
            seen.clear()
            one = hand_batch(n=1)
            with torch.no_grad():
                model(one.audio, one.visual, one.motion)
            per_video = max(seen, default=0)
            assert chunk_size(model, "cuda") * per_video <= 65_535, name
            assert chunk_size(model, "cpu") == 512  # CPU numbers stay as they were
        assert chunk_size(build(variants.get("HAN").model), "cuda") == 4096
    finally:
        hook.remove()
