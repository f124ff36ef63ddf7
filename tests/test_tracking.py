"""avvp/training/tracking.py: the environment in run.json, and TensorBoard scalars that change nothing."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import torch

from avvp.cli import main
from avvp.errors import AvvpError
from avvp.training import tracking


def test_environment_names_versions_and_hardware():
    env = tracking.environment("cpu")
    assert set(env) == {"python", "torch", "cuda", "cudnn", "device_name", "cpu_capability", "torch_threads",
                        "deterministic"}
    # The CPU kernels torch dispatches to (AVX2, AVX512, ...): fp32 training numbers depend on them.
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["torch"] == torch.__version__ and env["torch_threads"] == torch.get_num_threads()
    assert env["cuda"] == torch.version.cuda            # None on a CPU build
    assert env["device_name"].endswith(f"({tracking.cpu_cores()} cores)") and env["deterministic"] is False
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))


def test_tags():
    assert [tracking.tag(k) for k in ["epoch", "lr", "loss_bce", "loss_cms", "val_segment_type_av",
                                      "test_event_audio_visual", "train_seconds", "seconds"]] == [
        None, "lr", "loss/bce", "loss/cms", "val/segment/type_av", "test/event/audio_visual", "time/train_seconds",
        "time/seconds"]


def _scalars(folder) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _train(packed, out, *extra):
    assert main(["train", "--variant", "HAN + CM-S", "--seed", "0", "--data", str(packed), "--out", str(out),
                 "--epochs", "3", "--threads", "1", *extra]) == 0


def test_tensorboard_holds_every_epoch_and_changes_nothing(packed_tiny, tmp_path):
    pytest.importorskip("tensorboard")
    _train(packed_tiny, tmp_path / "plain")
    _train(packed_tiny, tmp_path / "tracked", "--tensorboard", str(tmp_path / "tb"))
    done = [json.loads((tmp_path / r / "done.json").read_text()) for r in ("plain", "tracked")]
    assert done[0]["selected"] == done[1]["selected"] and done[0]["job"] == done[1]["job"]
    logs = [pd.read_csv(tmp_path / r / "log.csv") for r in ("plain", "tracked")]
    timeless = [c for c in logs[0].columns if not c.endswith("seconds")]
    pd.testing.assert_frame_equal(logs[0][timeless], logs[1][timeless])
    assert sorted(p.name for p in (tmp_path / "tracked").iterdir()) == sorted(p.name for p in (tmp_path / "plain").iterdir())
    # Read back: every epoch's scalars under <root>/<slug>/seed<S>, equal (as float32) to log.csv's.
    scalars = _scalars(tmp_path / "tb" / "han_cm_s" / "seed0")
    log = logs[1]
    for column in log.columns:
        name = tracking.tag(column)
        if name is None:
            continue
        present = log[column].notna()       # an extra loss is logged from the epoch it starts
        assert [s for s, _ in scalars[name]] == log.loc[present, "epoch"].tolist(), name
        assert [v for _, v in scalars[name]] == pytest.approx(log.loc[present, column].tolist(), rel=1e-6), name
    assert {"loss/bce", "loss/cms", "val/segment/type_av", "lr"} <= set(scalars)
    assert [s for s, _ in scalars["val/segment/type_av"]] == [1, 2, 3]
    total = log[[c for c in log.columns if c.startswith("loss_")]].sum(axis=1, skipna=True)
    assert [v for _, v in scalars["loss/total"]] == pytest.approx(total.tolist(), rel=1e-6)
    run = json.loads((tmp_path / "tracked" / "run.json").read_text())
    assert run["environment"]["torch"] == torch.__version__ and run["recipe_name"] == "ours"


def test_a_resumed_run_hides_what_the_killed_process_logged_after_its_checkpoint(tmp_path):
    pytest.importorskip("tensorboard")
    folder = tmp_path / "tb"
    killed = tracking.TensorBoard(folder)
    for epoch, loss in [(1, 3.0), (2, 2.0), (3, 9.0)]:   # epoch 3 logged, then killed before its checkpoint
        killed({"epoch": epoch, "loss_bce": loss})
    killed.close()
    resumed = tracking.TensorBoard(folder)              # resumes after epoch 2's checkpoint
    for epoch, loss in [(3, 1.5), (4, 1.0)]:
        resumed({"epoch": epoch, "loss_bce": loss})
    resumed.close()
    assert _scalars(folder)["loss/bce"] == [(1, 3.0), (2, 2.0), (3, 1.5), (4, 1.0)]


def test_without_tensorboard_installed_it_is_one_line_and_nothing_is_written(packed_tiny, tmp_path, monkeypatch,
                                                                              capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)    # import fails as if not installed
    with pytest.raises(AvvpError, match=r"pip install -e '.\[tracking\]'"):
        tracking.Tracking(tmp_path / "tb", "han", 0)
    assert main(["train", "--variant", "HAN", "--data", str(packed_tiny), "--out", str(tmp_path / "run"),
                 "--epochs", "1", "--tensorboard", str(tmp_path / "tb")]) == 1
    assert "tensorboard package is not installed" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()
    with tracking.Tracking(None, "han", 0) as hook:     # off: no hook, nothing imported
        assert hook is None
