"""Training: determinism, resume after a kill, clear errors; evaluation writes the `avvp score` schema."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from avvp.cli import main

KEYS = {"audio", "visual", "audio_visual", "type_av", "event_av"}


def train(packed, out, variant="HAN", epochs=2, *extra):
    return main(["train", "--variant", variant, "--seed", "3", "--data", str(packed), "--out", str(out),
                 "--epochs", str(epochs), "--threads", "1", *extra])


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


def test_killed_run_resumes_to_the_same_result(packed_tiny, tmp_path):
    """SIGKILL a run after its first epoch's checkpoint, start it again: same metrics as uninterrupted.

    HAN + CM-S from epoch 3 on: the resumed part draws CM-S's batch pairings and dropout from restored RNGs.
    """
    args = ["--variant", "HAN + CM-S", "--seed", "1", "--data", str(packed_tiny), "--epochs", "4", "--threads", "1"]
    assert main(["train", *args, "--out", str(tmp_path / "whole")]) == 0

    cut = tmp_path / "cut"
    cmd = [sys.executable, "-m", "avvp", "train", *args, "--out", str(cut)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not (cut / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (cut / "done.json").exists()

    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stdout
    whole, resumed = (json.loads((tmp_path / r / "done.json").read_text()) for r in ("whole", "cut"))
    assert resumed["selected"] == whole["selected"]
    assert resumed["selected_epoch"] == whole["selected_epoch"]
    wa, wb = torch.load(tmp_path / "whole" / "best.pt"), torch.load(cut / "best.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_corrupt_checkpoint_is_one_clear_error(packed_tiny, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "last.pt").write_bytes(b"not a checkpoint")
    assert train(packed_tiny, out) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "last.pt" in err and "corrupt checkpoint" in err


def test_unknown_variant_and_missing_data(packed_tiny, tmp_path, capsys):
    assert train(packed_tiny, tmp_path / "r", "HAN 9 Layers") == 1
    assert "unknown variant 'HAN 9 Layers'" in capsys.readouterr().err
    assert train(tmp_path / "nowhere", tmp_path / "r") == 1
    assert "avvp pack" in capsys.readouterr().err


def test_refined_variant_names_the_command_that_makes_its_labels(packed_tiny, tmp_path, capsys):
    assert train(packed_tiny, tmp_path / "r", "MA*") == 1
    err = capsys.readouterr().err
    assert "avvp refine --data" in err and "--refined" in err


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
    ann = Path(json.loads((Path(packed_tiny) / "manifest.json").read_text())["source"]["data"])
    out = tmp_path / "score.json"
    assert main(["score", "--annotations", str(ann), "--split", "test",
                 "--predictions", str(run / "test" / "predictions.npz"), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == m


def test_refine_then_train_on_refined_labels(packed_tiny, tmp_path):
    ref = tmp_path / "refine"
    assert main(["refine", "--data", str(packed_tiny), "--seed", "0", "--out", str(ref), "--epochs", "1",
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
