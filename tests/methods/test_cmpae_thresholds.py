"""CMPAE's gating and threshold search (docs/methods/cmpae.md#cmpae-gating): hand-made splits, exactness, the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avvp.cli import main
from avvp.evaluation import gatings, metrics
from avvp.methods.cmpae.thresholds import GRID, released_thresholds, search

ON_0, ON_1 = slice(0, 5), slice(5, 10)


def hand_split():
    """8 videos. Videos 0-3 concern class 0 only, 4-7 class 1 only; the visual stream predicts an event wherever
    frame_prob is 0.9 and the gate is open. Per video, the event-level visual F is 1, 0, or 1 when nothing is active.

    class 0, gt in videos 0, 1; v_prob .72 .50 .33 .60: tau <= .30 -> 2 of 4, .35-.50 -> 3, .55-.60 -> 2,
    .65-.70 -> 3: a tie, the larger tau (0.70) wins.
    class 1, gt in videos 4, 6; v_prob .42 .58 .27 .10: tau .25 -> 3 of 4, .30-.40 -> 2, .45-.55 -> 1, .60-.70 -> 2.
    Every other class: nothing anywhere, every tau ties, 0.70.
    """
    n = 8
    frame_prob = np.zeros((n, 10, 2, 25), np.float32)
    gt_visual = np.zeros((n, 25, 10), np.uint8)
    v_prob = np.zeros((n, 25), np.float32)
    frame_prob[0:4, ON_0, 1, 0] = 0.9
    frame_prob[4:8, ON_1, 1, 1] = 0.9
    gt_visual[[0, 1], 0, ON_0] = 1
    gt_visual[[4, 6], 1, ON_1] = 1
    v_prob[0:4, 0] = [0.72, 0.50, 0.33, 0.60]
    v_prob[4:8, 1] = [0.42, 0.58, 0.27, 0.10]
    probs = {"frame_prob": frame_prob, "v_prob": v_prob, "a_prob": np.zeros((n, 25), np.float32),
             "global_prob": np.zeros((n, 25), np.float32)}
    return probs, gt_visual


def test_search_picks_the_known_best_per_class_and_a_tie_keeps_the_larger_tau():
    probs, gt = hand_split()
    found = search(probs, gt)
    assert found["grid"] == [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
    assert found["thresholds"] == [0.7, 0.25] + [0.7] * 23
    # At 0.45 everywhere: class 0's videos 3 of 4, class 1's 1 of 4.
    assert found["baseline"] == pytest.approx(100 * 4 / 8)
    assert found["scores"][0] == pytest.approx(100 * (3 + 1) / 8)
    assert found["scores"][1] == pytest.approx(100 * (3 + 3) / 8)


def test_each_score_is_exactly_what_evaluation_reports_for_those_thresholds():
    probs, gt = hand_split()
    rng = np.random.default_rng(0)
    probs = {**probs, "frame_prob": rng.random(probs["frame_prob"].shape, dtype=np.float32),
             "v_prob": rng.random(probs["v_prob"].shape, dtype=np.float32)}
    gt = (rng.random(gt.shape) < 0.3).astype(np.uint8)
    found = search(probs, gt)
    for c in range(25):
        tau = np.full(25, 0.45, np.float32)
        tau[c] = found["thresholds"][c]
        audio, visual = gatings.binarize(probs, "cmpae", thresholds=tau)
        assert metrics.llp_scores(audio, visual, gt, gt)["event"]["visual"] == found["scores"][c]


def test_cmpae_gating_thresholds_at_their_edges():
    """Audio on at a_prob >= 0.45, visual at v_prob >= tau_c, segments at frame_prob >= 0.25 (float32 compares)."""
    frame_prob = np.zeros((1, 10, 2, 25), np.float32)
    frame_prob[0, :, :, 0] = [[0.25, 0.25]] * 5 + [[0.24, 0.24]] * 5
    frame_prob[0, :, :, 1] = 0.9
    probs = {"frame_prob": frame_prob, "global_prob": np.zeros((1, 25), np.float32),
             "a_prob": np.array([[0.45, 0.44] + [0] * 23], np.float32),
             "v_prob": np.array([[0.45, 0.60] + [0] * 23], np.float32)}
    audio, visual = gatings.binarize(probs, "cmpae")
    assert audio[0, 0].tolist() == [1] * 5 + [0] * 5 and audio[0, 1].sum() == 0
    assert visual[0, 0].tolist() == [1] * 5 + [0] * 5 and visual[0, 1].sum() == 10
    tau = np.full(25, 0.45, np.float32)
    tau[:2] = [0.5, 0.6]
    _, visual = gatings.binarize(probs, "cmpae", thresholds=tau)
    assert visual[0, 0].sum() == 0 and visual[0, 1].sum() == 10


def test_released_thresholds_are_the_shipped_25():
    tau = released_thresholds()
    assert len(tau) == 25 and tau[0] == 0.70 and tau[24] == 0.30
    assert sum(t == 0.70 for t in tau) == 9 and set(tau) <= set(GRID)


@pytest.fixture(scope="module")
def cmpae_run(packed_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmpae") / "run"
    assert main(["train", "--variant", "CMPAE (released ratios)", "--seed", "0", "--data", str(packed_tiny), "--out", str(out),
                 "--epochs", "2", "--threads", "1"]) == 0
    return out


def test_evaluate_scores_the_cmpae_gating_with_the_runs_thresholds(cmpae_run, capsys):
    assert main(["thresholds", "--run", str(cmpae_run), "--threads", "1"]) == 0
    record = json.loads((cmpae_run / "thresholds.json").read_text())
    assert record["mode"] == "tuned" and record["snapshot"] == "selected" and len(record["thresholds"]) == 25
    assert main(["evaluate", "--run", str(cmpae_run), "--split", "val", "--threads", "1"]) == 0
    z = np.load(cmpae_run / "val" / "predictions.npz")
    probs = {k: z[k] for k in ("frame_prob", "global_prob", "a_prob", "v_prob")}
    audio, visual = gatings.binarize(probs, "cmpae", thresholds=record["thresholds"])
    want = metrics.llp_scores(audio, visual, z["gt_audio"], z["gt_visual"])
    by_gating = json.loads((cmpae_run / "val" / "metrics_by_gating.json").read_text())
    assert by_gating["own"] == "cmpae" and by_gating["cmpae"] == want
    assert json.loads((cmpae_run / "val" / "metrics.json").read_text()) == want
    assert max(record["scores"]) >= record["baseline"]


def test_search_is_deterministic_and_early_snapshot_is_another_model(cmpae_run, capsys):
    assert main(["thresholds", "--run", str(cmpae_run), "--threads", "1"]) == 0
    first = json.loads((cmpae_run / "thresholds.json").read_text())
    assert main(["thresholds", "--run", str(cmpae_run), "--threads", "1"]) == 0
    again = json.loads((cmpae_run / "thresholds.json").read_text())
    assert {k: v for k, v in first.items() if k != "seconds"} == {k: v for k, v in again.items() if k != "seconds"}
    assert (cmpae_run / "early.pt").exists()
    assert main(["thresholds", "--run", str(cmpae_run), "--snapshot", "early", "--threads", "1"]) == 0
    assert json.loads((cmpae_run / "thresholds.json").read_text())["snapshot"] == "early"


def test_bad_inputs_are_one_line(cmpae_run, tmp_path, capsys):
    assert main(["thresholds", "--run", str(cmpae_run), "--mode", "released"]) == 1
    assert "real LLP" in capsys.readouterr().err
    (cmpae_run / "thresholds.json").write_text(json.dumps({"format": 1, "thresholds": [0.5] * 24}))
    assert main(["evaluate", "--run", str(cmpae_run), "--split", "val", "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert "thresholds.json: not a thresholds file" in err and len(err.strip().splitlines()) == 1
    (cmpae_run / "thresholds.json").write_text("{trunc")
    assert main(["evaluate", "--run", str(cmpae_run), "--split", "val", "--threads", "1"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    (cmpae_run / "thresholds.json").unlink()
    assert main(["thresholds", "--run", str(tmp_path / "none")]) == 1
    assert "not a trained run" in capsys.readouterr().err


def test_a_killed_search_leaves_no_file_and_the_rerun_is_the_uninterrupted_result(cmpae_run):
    import signal
    import subprocess
    import sys
    import time

    assert main(["thresholds", "--run", str(cmpae_run), "--threads", "1"]) == 0
    whole = json.loads((cmpae_run / "thresholds.json").read_text())
    (cmpae_run / "thresholds.json").unlink()
    cmd = [sys.executable, "-m", "avvp", "thresholds", "--run", str(cmpae_run), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)                                     # inside its imports, model load or forward pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == -signal.SIGKILL:
        assert not (cmpae_run / "thresholds.json").exists()
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    again = json.loads((cmpae_run / "thresholds.json").read_text())
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in whole.items() if k != "seconds"}
    assert not list(cmpae_run.glob("*.tmp"))
