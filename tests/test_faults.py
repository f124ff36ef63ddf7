"""Faults a long run meets: a full disk, a kill mid-write, a truncated or damaged cache file.

A full disk is simulated without mounting anything: `avvp` runs as a subprocess under a file-size limit
(resource.RLIMIT_FSIZE) with SIGXFSZ ignored, so a write past the limit fails with EFBIG, as a full disk fails
with ENOSPC (which the in-process tests raise through a patched os.posix_fallocate / shutil.disk_usage). Every
case asserts what a user sees (exit 1, one line naming the output, what it is and how much space it needs) and
what is left on disk (the folder's listing and every file's sha256, dotfiles included: the previous good output
untouched, no temporary left).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_train import kill_after_first_checkpoint

from avvp import io, paths, stages
from avvp.cli import main
from avvp.methods import ma

TEN = ["segment.audio", "event.audio", "segment.visual", "event.visual", "segment.audio_visual",
       "event.audio_visual", "segment.type_av", "event.type_av", "segment.event_av", "event.event_av"]


# ------------------------------------------------------------------------------------------ helpers

def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (dotfiles included): relative path -> sha256 of a file, 'dir' for a folder."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        out[str(p.relative_to(folder))] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temporaries(folder: Path) -> list[str]:
    return [str(p) for p in Path(folder).rglob(".*")]


def avvp_limited(args: list[str], limit: int) -> subprocess.CompletedProcess:
    """`python -m avvp ARGS` with files limited to `limit` bytes (RLIMIT_FSIZE). SIGXFSZ is ignored (CPython
    ignores it at startup anyway, so a user's `ulimit -f` gives avvp EFBIG, not a kill)."""
    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return subprocess.run([sys.executable, "-m", "avvp", *args], capture_output=True, text=True,
                          preexec_fn=limited, timeout=300)


def error_line(proc: subprocess.CompletedProcess, command: str) -> str:
    """The one error line of a failed `avvp COMMAND` (progress bars aside), asserting there is exactly one."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.startswith("avvp ")]
    assert len(lines) == 1 and lines[0].startswith(f"avvp {command}: error: "), proc.stderr
    return lines[0]


def assert_full_disk_line(line: str, path: Path, what: str) -> None:
    assert f"{path}: file too large for the file-size limit writing the {what} (needs " in line, line
    assert "`ulimit -f`" in line, line


def packed_mb(packed: Path) -> str:
    """The size of a packed dataset's arrays as the space checks print it ('85.5 MB')."""
    return f"{sum(f.stat().st_size for f in Path(packed).rglob('*.npy')) / 1e6:.1f} MB"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


# -------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def evaluated(packed_tiny, tmp_path_factory) -> Path:
    """A results tree: HAN trained 2 epochs and evaluated on test; 'HAN + Ours' and 'MA' copies of it (every
    reader's second row); MA's refinement (its step 1 trained 1 epoch); a tables file with a table of HAN and
    'HAN + Ours' (table2) and one of HAN and 'MA' (table_ma, whose label quality is MA's refinement); the config.
    Read-only: tests that change it work on a copy."""
    root = tmp_path_factory.mktemp("evaluated")
    results = root / "results"
    han = paths.run_folder(paths.slug("HAN"), 0, results)
    assert main(["train", "--variant", "HAN", "--seed", "0", "--data", str(packed_tiny), "--out", str(han),
                 "--epochs", "2", "--threads", "1"]) == 0
    assert main(["evaluate", "--run", str(han), "--split", "test", "--threads", "1"]) == 0
    shutil.copytree(han, paths.run_folder(paths.slug("HAN + Ours"), 0, results))
    shutil.copytree(han, paths.run_folder(paths.slug("MA"), 0, results))     # a row on MA's refined labels
    step1 = paths.run_folder(paths.slug("MA step 1"), 0, results)
    assert main(["train", "--variant", "MA step 1", "--seed", "0", "--data", str(packed_tiny), "--out", str(step1),
                 "--epochs", "1", "--threads", "1"]) == 0
    assert main(["refine", "--run", str(step1), "--data", str(packed_tiny), "--seed", "0",
                 "--out", str(ma.refine_folder(0, results)), "--threads", "1"]) == 0
    def published(x):  # by level and key, as in metrics.json
        keys = ["audio", "visual", "audio_visual", "type_av", "event_av"]
        return {level: dict.fromkeys(keys, x) for level in ("segment", "event")}
    rows = [{"variant": "HAN", "published": published(50.0), "base": None},
            {"variant": "HAN + Ours", "published": published(55.0), "base": "HAN"}]
    ma_rows = [rows[0], {"variant": "MA", "published": published(52.0), "base": "HAN"}]
    (root / "tables.yaml").write_text(yaml.safe_dump(
        {"source": "The paper", "tables": {"table2": {"title": "Faults", "source": "Table 2", "columns": TEN,
                                                      "rows": rows},
                                           "table_ma": {"title": "A row on refined labels", "source": "Table M",
                                                        "columns": TEN, "rows": ma_rows}}}))
    (root / "config.yaml").write_text(yaml.safe_dump(
        {"dataset": {"kind": "synthetic", "preset": "tiny", "seed": 0, "path": None}, "seeds": [0],
         "epochs": 2, "protocol": "default"}))
    return root


def copy_of(evaluated: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(evaluated, tmp_path / "copy"))


def table_args(root: Path, out: Path, packed) -> list[str]:
    return ["table", "--table", "table2", "--results", str(root / "results"), "--config", str(root / "config.yaml"),
            "--tables", str(root / "tables.yaml"), "--data", str(packed), "--seeds", "0", "--out", str(out)]


# ------------------------------------------------------------------------------------------ full disk

def test_full_disk_pack_is_one_line_and_keeps_the_previous_pack(tiny_llp, tmp_path):
    out = tmp_path / "data" / "packed"
    assert main(["pack", "--data", str(tiny_llp), "--out", str(out)]) == 0
    before = snapshot(out.parent)
    proc = avvp_limited(["pack", "--data", str(tiny_llp), "--out", str(out)], 1 << 20)
    line = error_line(proc, "pack")
    assert f"{out}/train/" in line and f"writing the packed arrays (needs {packed_mb(out)}" in line, line
    assert snapshot(out.parent) == before


def test_pack_checks_free_space_first_and_says_how_much_it_needs(tiny_llp, packed_tiny, tmp_path, monkeypatch,
                                                                 capsys):
    out = tmp_path / "packed"
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=10_000_000))
    opened = []
    monkeypatch.setattr(np.lib.format, "open_memmap", lambda *a, **k: opened.append(a))
    assert main(["pack", "--data", str(tiny_llp), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{out}: needs {packed_mb(packed_tiny)} for the packed arrays, 10.0 MB free" in err, err
    assert opened == [] and os.listdir(tmp_path) == ["tiny"]


def test_pack_reserves_every_array_before_writing_any(tiny_llp, packed_tiny, tmp_path, monkeypatch, capsys):
    """ENOSPC from the reservation of the last split's array: at once, before any video is read; never SIGBUS."""
    out = tmp_path / "packed"
    reserved = []

    def fallocate(fd, offset, size):
        reserved.append(size)
        if len(reserved) == 12:   # 3 splits x (audio, visual, motion, frames)
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    from avvp.data import llp
    loaded = []
    real_load = llp.load_feature
    monkeypatch.setattr("avvp.data.pack.load_feature", lambda *a: loaded.append(a) or real_load(*a))
    assert main(["pack", "--data", str(tiny_llp), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{out}/test/frames.npy: no space left on the device" in err, err
    assert f"writing the packed arrays (needs {packed_mb(packed_tiny)}" in err, err
    assert loaded == [] and os.listdir(tmp_path) == ["tiny"]


def test_full_disk_train_checkpoint_keeps_the_last_good_one(packed_tiny, tmp_path):
    """SIGKILL after epoch 1, plus a temporary of a writer killed mid-write; the rerun on a full disk fails on
    epoch 2's checkpoint in one line, removes the dead writer's temporary, leaves last.pt of epoch 1 as it was;
    the next rerun resumes and ends with an uninterrupted run's result."""
    args = ["train", "--variant", "HAN", "--seed", "0", "--data", str(packed_tiny), "--epochs", "2",
            "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    cut = tmp_path / "cut"
    kill_after_first_checkpoint([sys.executable, "-m", "avvp", *args, "--out", str(cut)], cut)
    killed_writer(cut / "best.pt")
    assert len(temporaries(cut)) == 1
    before = {k: v for k, v in snapshot(cut).items() if not k.startswith(".")}

    line = error_line(avvp_limited([*args, "--out", str(cut)], 1 << 20), "train")
    assert "writing the checkpoint (needs 18." in line or "writing the checkpoint (needs 54." in line, line
    assert str(cut) in line and "file too large for the file-size limit" in line, line
    assert snapshot(cut) == before

    proc = subprocess.run([sys.executable, "-m", "avvp", *args, "--out", str(cut)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "resuming HAN seed 0 after epoch 1" in proc.stdout
    assert_same_run(tmp_path / "whole", cut)


def killed_writer(path: Path) -> None:
    """A process SIGKILLed in the middle of writing `path` through avvp.io (no cleanup runs)."""
    code = ("import os, signal, sys; from avvp import io\n"
            "with io.atomic_write(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half a checkpoint')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)])
    assert proc.returncode == -signal.SIGKILL


def assert_same_run(whole: Path, other: Path) -> None:
    a, b = (json.loads((r / "done.json").read_text()) for r in (whole, other))
    assert a["selected"] == b["selected"] and a["selected_epoch"] == b["selected_epoch"]
    wa, wb = torch.load(whole / "best.pt"), torch.load(other / "best.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert temporaries(other) == []


@pytest.mark.parametrize("stage", ["evaluate", "refine", "table", "figure", "diagnose", "profile"])
def test_full_disk_is_one_line_and_keeps_the_previous_outputs(stage, evaluated, packed_tiny, tmp_path):
    root = copy_of(evaluated, tmp_path)
    results = root / "results"
    han = paths.run_folder(paths.slug("HAN"), 0, results)
    figure = ["figure", "--kind", "timeline", "--results", str(results), "--tables", str(root / "tables.yaml"),
              "--methods", "HAN", "HAN + Ours", "--seeds", "0", "--out", str(results / "figures" / "timeline.png")]
    diagnose = ["diagnose", "--results", str(results), "--tables", str(root / "tables.yaml"), "--seeds", "0",
                "--out", str(results / "diagnostics"), "--no-refine"]
    cases = {  # the command, the output it fails on first, what that output is, the file-size limit
        "evaluate": (["evaluate", "--run", str(han), "--split", "test"], han / "test" / "predictions.npz",
                     "arrays", 1000),
        "refine": (["refine", "--run", str(paths.run_folder(paths.slug("MA step 1"), 0, results)), "--data",
                    str(packed_tiny), "--seed", "0", "--out", str(results / "refine" / "seed0")],
                   results / "refine" / "seed0" / "summary.json", "JSON", 200),
        "table": (table_args(root, results / "table2.md", packed_tiny), results / "table2.csv", "CSV table", 200),
        "figure": (figure, results / "figures" / "timeline.png", "figure", 1000),
        "diagnose": (diagnose, results / "diagnostics" / "per_class_f.csv", "CSV table", 200),
        "profile": (["profile", "--variant", "HAN", "--out", str(results / "profile" / "han.json")],
                    results / "profile" / "han.json", "JSON", 64),
    }
    command, output, what, limit = cases[stage]
    assert main(command) == 0                 # a previous good output of the same command
    before = snapshot(results)
    assert output.relative_to(results).as_posix() in before
    line = error_line(avvp_limited(command, limit), stage)
    assert_full_disk_line(line, output, what)
    assert snapshot(results) == before


def test_full_disk_enospc_names_the_free_space(tmp_path, monkeypatch):
    """ENOSPC (not a limit): the line says how much the output needs and how much is free."""
    def fallocate(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    (tmp_path / "m.json").write_text("{}\n")
    with pytest.raises(io.AvvpError) as e:
        io.write_json(tmp_path / "m.json", {"a": 1})
    assert str(e.value).startswith(f"{tmp_path / 'm.json'}: no space left on the device writing the JSON "
                                   "(needs 13 B, "), e.value
    assert " free); " in str(e.value)
    assert os.listdir(tmp_path) == ["m.json"] and (tmp_path / "m.json").read_text() == "{}\n"


# --------------------------------------------------------------------------------------- kills mid-write

def test_killed_pack_is_removed_by_the_rerun_which_equals_an_uninterrupted_pack(tiny_llp, tmp_path):
    whole = tmp_path / "whole" / "packed"
    assert main(["pack", "--data", str(tiny_llp), "--out", str(whole)]) == 0
    out = tmp_path / "cut" / "packed"
    proc = subprocess.Popen([sys.executable, "-m", "avvp", "pack", "--data", str(tiny_llp), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".packed.*.tmp/train/audio.npy")):   # streaming the arrays
        assert proc.poll() is None and time.monotonic() < deadline, "pack ended before it could be killed"
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    assert [p.name for p in out.parent.iterdir()][0].startswith(".packed.")   # the dead writer's folder
    assert main(["pack", "--data", str(tiny_llp), "--out", str(out)]) == 0
    assert os.listdir(out.parent) == ["packed"]
    assert snapshot(out) == snapshot(whole)


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    """Dead writers' temporaries (a file, a folder) are removed; a live writer's (this process's) is kept."""
    code = ("import os, signal, sys; from avvp import io\n"
            "with io.atomic_dir(sys.argv[1]) as tmp:\n"
            "    (tmp / 'x.npy').write_bytes(b'half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    with io.atomic_write(tmp_path / "b.json") as live:
        live.write_text("{}")
        # Each in a folder of its own (a writer sweeps its folder first), then moved beside the live one.
        killed_writer(tmp_path / "x" / "a.json")
        assert subprocess.run([sys.executable, "-c", code, tmp_path / "y" / "d"]).returncode == -signal.SIGKILL
        for folder in ("x", "y"):
            for p in (tmp_path / folder).iterdir():
                p.rename(tmp_path / p.name)
            (tmp_path / folder).rmdir()
        dead = sorted(p.name for p in tmp_path.iterdir() if p != live)
        assert len(dead) == 2 and all(n.startswith((".a.json.", ".d.")) and n.endswith(".tmp") for n in dead)
        assert sorted(p.name for p in io.remove_stale_temporaries(tmp_path)) == dead
        assert [p.name for p in tmp_path.iterdir()] == [live.name]
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


# ------------------------------------------------------------------------------------- damaged caches

def test_truncated_last_checkpoint_starts_the_run_over(evaluated, tmp_path, packed_tiny, capsys):
    run = tmp_path / "r"
    shutil.copytree(paths.run_folder(paths.slug("HAN"), 0, evaluated / "results"), run)
    (run / "done.json").unlink()
    truncate(run / "last.pt")
    assert main(["train", "--variant", "HAN", "--seed", "0", "--data", str(packed_tiny), "--out", str(run),
                 "--epochs", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    said = [ln for ln in out.splitlines() if "last.pt" in ln]
    assert len(said) == 1 and said[0].startswith(f"{run / 'last.pt'}: unreadable checkpoint (") and \
        said[0].endswith("; starting the run over"), out
    assert_same_run(paths.run_folder(paths.slug("HAN"), 0, evaluated / "results"), run)


def test_unreadable_best_checkpoint_is_one_line_for_evaluate_and_retrained_by_train(evaluated, tmp_path,
                                                                                    packed_tiny, capsys):
    run = tmp_path / "r"
    shutil.copytree(paths.run_folder(paths.slug("HAN"), 0, evaluated / "results"), run)
    truncate(run / "best.pt")
    assert main(["evaluate", "--run", str(run), "--split", "test"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{run / 'best.pt'}: unreadable checkpoint" in err, err
    assert f"avvp train --out {run}" in err, err
    assert main(["train", "--variant", "HAN", "--seed", "0", "--data", str(packed_tiny), "--out", str(run),
                 "--epochs", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{run / 'best.pt'}: unreadable checkpoint" in out and "starting the run over" in out, out
    assert_same_run(paths.run_folder(paths.slug("HAN"), 0, evaluated / "results"), run)


def test_done_json_that_is_not_json_is_rebuilt(evaluated, tmp_path, packed_tiny, capsys):
    run = tmp_path / "r"
    shutil.copytree(paths.run_folder(paths.slug("HAN"), 0, evaluated / "results"), run)
    (run / "done.json").write_text('{"selected_epoch": 2, "sel')
    assert main(["train", "--variant", "HAN", "--seed", "0", "--data", str(packed_tiny), "--out", str(run),
                 "--epochs", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{run / 'done.json'}: unreadable completion record (not valid JSON" in out and "rebuilding it" in out
    assert_same_run(paths.run_folder(paths.slug("HAN"), 0, evaluated / "results"), run)


def _reader_cases(root: Path, packed) -> dict:
    """file kind -> (the damaged file, the command that reads it, what the line must say of the remedy)."""
    results = root / "results"
    han = paths.run_folder(paths.slug("HAN"), 0, results)
    refined = ma.labels_file(ma.refine_folder(0, results))
    return {
        "per_video.npz": (paths.per_video_npz(han, "test"), table_args(root, results / "t.md", packed),
                          f"avvp evaluate --run {han} --split test"),
        "metrics.json": (paths.metrics_json(han, "test"), table_args(root, results / "t.md", packed),
                         f"avvp evaluate --run {han} --split test"),
        "predictions.npz": (paths.predictions_npz(han, "test"),
                            ["figure", "--kind", "timeline", "--results", str(results), "--tables",
                             str(root / "tables.yaml"), "--methods", "HAN",
                             "HAN + Ours", "--seeds", "0", "--out", str(results / "f.png")],
                            f"avvp evaluate --run {han} --split test"),
        "refined_labels.npz": (refined, ["train", "--variant", "MA", "--data", str(packed), "--out",
                                         str(results / "ma"), "--refined", str(refined), "--epochs", "1"],
                               "avvp refine"),
        "summary.json": (ma.summary_file(ma.refine_folder(0, results)),
                         ["diagnose", "--results", str(results), "--tables", str(root / "tables.yaml"), "--table",
                          "table_ma", "--seeds", "0", "--out", str(results / "diagnostics")], "avvp refine"),
        "run.json": (paths.run_json(han), ["evaluate", "--run", str(han), "--split", "test"], "avvp train"),
    }


@pytest.mark.parametrize("damage", ["truncated", "binary"])
@pytest.mark.parametrize("kind", ["per_video.npz", "metrics.json", "predictions.npz", "refined_labels.npz",
                                  "summary.json", "run.json"])
def test_damaged_cache_file_is_one_line_naming_it_and_the_remedy(kind, damage, evaluated, packed_tiny, tmp_path,
                                                                  capsys):
    root = copy_of(evaluated, tmp_path)
    path, command, remedy = _reader_cases(root, packed_tiny)[kind]
    if damage == "truncated":
        truncate(path)
    else:
        path.write_bytes(bytes(range(256)) * 4)
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}: unreadable " in err and remedy in err, err


def test_workflow_check_removes_unreadable_outputs_so_they_are_made_again(evaluated, tmp_path):
    root = copy_of(evaluated, tmp_path)
    results = root / "results"
    han = paths.run_folder(paths.slug("HAN"), 0, results)
    damaged = [paths.per_video_npz(han, "test"), paths.done_json(paths.run_folder(paths.slug("HAN + Ours"), 0, results)),
               ma.labels_file(ma.refine_folder(0, results)), paths.best_pt(han)]
    for p in damaged:
        truncate(p)
    (han / "test" / "metrics_by_gating.json").write_text("")
    rebuildable = stages.rebuildable(results, root / "data")
    before = snapshot(results)
    lines = io.remove_unreadable(rebuildable, dry_run=True)
    assert len(lines) == 5 and all("a real run removes it" in ln for ln in lines) and snapshot(results) == before
    lines = io.remove_unreadable(rebuildable)
    assert len(lines) == 5 and all(ln.count("unreadable") == 1 for ln in lines), lines
    gone = set(before) - set(snapshot(results))
    # Each with the other outputs of its job (so the next job asking for one re-runs it); best.pt with done.json
    # (the run is trained again).
    expected = {*(f(han, "test") for f in (paths.metrics_json, paths.predictions_npz, paths.per_video_npz,
                                           paths.by_gating_json)),
                paths.done_json(paths.run_folder(paths.slug("HAN + Ours"), 0, results)), ma.labels_file(ma.refine_folder(0, results)),
                ma.summary_file(ma.refine_folder(0, results)), paths.best_pt(han), paths.done_json(han)}
    assert gone == {str(p.relative_to(results)) for p in expected}
    assert io.remove_unreadable(rebuildable) == []


def test_avvp_pack_replaces_a_pack_whose_manifest_snakemake_removed(tiny_llp, tmp_path, capsys):
    """A pack killed after its rename but before Snakemake saw it finish: Snakemake deletes the incomplete
    output manifest.json; the rerun must replace the folder (only packed arrays in it), not refuse."""
    out = tmp_path / "packed"
    assert main(["pack", "--data", str(tiny_llp), "--out", str(out)]) == 0
    whole = snapshot(out)
    (out / "manifest.json").unlink()
    assert main(["pack", "--data", str(tiny_llp), "--out", str(out)]) == 0
    assert snapshot(out) == whole
    (out / "notes.txt").write_text("mine")
    (out / "manifest.json").unlink()
    assert main(["pack", "--data", str(tiny_llp), "--out", str(out)]) == 1
    assert "refusing to overwrite it" in capsys.readouterr().err


def test_full_disk_synth_is_one_line_and_leaves_nothing(tmp_path):
    """numpy's writer reports a short write without an errno: it is still the full-disk line."""
    out = tmp_path / "data" / "synthetic"
    line = error_line(avvp_limited(["synth", "--preset", "tiny", "--out", str(out)], 100_000), "synth")
    assert_full_disk_line(line, out, "synthetic dataset")
    assert "needs 76.3 MB" in line, line
    assert os.listdir(out.parent) == []


def test_synth_checks_free_space_first(tmp_path, monkeypatch, capsys):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1_000_000))
    assert main(["synth", "--preset", "tiny", "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{tmp_path / 's'}: needs " in err and "1.0 MB free" in err, err
    assert os.listdir(tmp_path) == []
