"""`avvp pack`: the packed arrays equal the per-file contents; the manifest says where they came from;
loading a damaged packed split is one line naming the file and the first bad video."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_llp

from avvp import cli
from avvp.constants import CLASS_INDEX, DENSE_CSV, FEATURES, WEAK_CSV
from avvp.data import dataset, synth
from avvp.data.llp import TRAIN_TRUTH_CSV
from avvp.errors import AvvpError

SPLIT_FILES = {"filenames.npy", "labels.npy", "audio.npy", "visual.npy", "frames.npy", "motion.npy"}


def test_packed_layout_and_manifest(packed_tiny):
    m = json.loads((packed_tiny / "manifest.json").read_text())
    data = packed_tiny.parent / "llp"
    assert m["format"] == 2 and m["frames"] is True and m["annotation_version"] == "synthetic"
    assert m["splits"] == {"train": 64, "val": 24, "test": 24}
    names = [*WEAK_CSV.values(), *DENSE_CSV.values(), TRAIN_TRUTH_CSV]
    assert m["hashes"] == {n: hashlib.sha256((data / n).read_bytes()).hexdigest() for n in sorted(names)}
    assert m["synthetic"] == json.loads((data / "synth_manifest.json").read_text())
    assert m["generator_version"] == m["synthetic"]["generator_version"] == synth.GENERATOR_VERSION
    # A feature folder's hash, by hand: sha256 of "name NUL sha256(file) LF" over its files, names sorted.
    for kind, (folder, _) in FEATURES.items():
        files = sorted((data / "feats" / folder).iterdir())
        text = "".join(f"{p.name}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in files)
        assert m["feature_hashes"][kind] == hashlib.sha256(text.encode()).hexdigest(), kind
    assert "source" not in m and str(data) not in (packed_tiny / "manifest.json").read_text()
    assert json.loads((packed_tiny / "source.json").read_text())["data"] == str(data.resolve())
    for kind, q in m["quirks"].items():
        assert q["count"] >= len(q["examples"]) > 0, kind
    assert {p.name for p in packed_tiny.iterdir()} == {"manifest.json", "source.json", "train", "val", "test"}
    assert {p.name for p in (packed_tiny / "train").iterdir()} == SPLIT_FILES | {"true_audio.npy", "true_visual.npy"}
    for split in ("val", "test"):
        assert {p.name for p in (packed_tiny / split).iterdir()} == SPLIT_FILES | {"gt_audio.npy", "gt_visual.npy"}


def test_arrays_equal_the_per_file_contents(packed_tiny):
    data = packed_tiny.parent / "llp"
    for split in ("train", "val", "test"):
        p = packed_tiny / split
        weak = pd.read_csv(data / WEAK_CSV[split], sep="\t")
        names = np.load(p / "filenames.npy")
        assert names.tolist() == weak["filename"].tolist()
        labels = np.load(p / "labels.npy")
        assert labels.dtype == np.uint8
        for i, text in enumerate(weak["event_labels"]):
            assert set(np.flatnonzero(labels[i])) == {CLASS_INDEX[c] for c in text.split(",")}
        arrays = {k: np.load(p / f"{k}.npy") for k in ("audio", "frames", "motion")}
        for kind, key in (("audio", "audio"), ("visual", "frames"), ("motion", "motion")):
            folder, shape = FEATURES[kind]
            assert arrays[key].shape == (len(names), *shape) and arrays[key].dtype == np.float32
            for i, name in enumerate(names):
                assert np.array_equal(arrays[key][i], np.load(data / "feats" / folder / f"{name[:11]}.npy"))
        visual = np.load(p / "visual.npy")
        assert visual.shape == (len(names), 10, 2048)
        np.testing.assert_allclose(visual, arrays["frames"].reshape(len(names), 10, 8, 2048).mean(axis=2),
                                   rtol=1e-6, atol=1e-6)


def test_ground_truth_and_truth_files(packed_tiny):
    data = packed_tiny.parent / "llp"
    for split in ("val", "test"):
        names = np.load(packed_tiny / split / "filenames.npy").tolist()
        for modality in ("audio", "visual"):
            gt = np.load(packed_tiny / split / f"gt_{modality}.npy")
            expect = np.zeros_like(gt)
            rows = pd.read_csv(data / DENSE_CSV[modality], sep="\t")
            for name, on, off, c in rows.itertuples(index=False):
                if name in names:
                    expect[names.index(name), CLASS_INDEX[c], on:off] = 1
            assert gt.dtype == np.uint8 and np.array_equal(gt, expect)
    truth = pd.read_csv(data / TRAIN_TRUTH_CSV, sep="\t", keep_default_na=False)
    true_a = np.load(packed_tiny / "train" / "true_audio.npy")
    for i, text in enumerate(truth["audio_labels"]):
        assert set(np.flatnonzero(true_a[i])) == {CLASS_INDEX[c] for c in text.split(",") if c}


def test_no_frames_and_real_layout_without_truth(hand_llp, tmp_path, capsys):
    out = tmp_path / "p"
    assert cli.main(["pack", "--data", str(hand_llp), "--out", str(out), "--no-frames"]) == 0
    assert "quirks: videos_without_visual_event 1" in capsys.readouterr().out
    m = json.loads((out / "manifest.json").read_text())
    assert m["frames"] is False and m["synthetic"] is None and m["annotation_version"] == "2024"
    assert m["splits"] == {"train": 3, "val": 2, "test": 2}
    assert not (out / "train" / "frames.npy").exists() and not (out / "train" / "true_audio.npy").exists()
    frames = np.stack([np.load(hand_llp / "feats" / "res152" / f"{n[:11]}.npy")
                       for n in np.load(out / "val" / "filenames.npy")])
    np.testing.assert_allclose(np.load(out / "val" / "visual.npy"), frames.reshape(2, 10, 8, 2048).mean(2),
                               rtol=1e-6, atol=1e-6)


def test_overridden_feature_folder_and_failed_repack_keeps_old_output(hand_llp, tmp_path):
    moved = tmp_path / "vggish_elsewhere"
    (hand_llp / "feats" / "vggish").rename(moved)
    out = tmp_path / "p"
    assert cli.main(["pack", "--data", str(hand_llp), "--out", str(out)]) == 1
    assert not out.exists()
    assert cli.main(["pack", "--data", str(hand_llp), "--out", str(out), "--audio-dir", str(moved)]) == 0
    before = (out / "manifest.json").read_bytes()
    (moved / "valvideo001.npy").unlink()
    assert cli.main(["pack", "--data", str(hand_llp), "--out", str(out), "--audio-dir", str(moved)]) == 1
    assert (out / "manifest.json").read_bytes() == before


def test_quirks_reach_the_manifest(tmp_path):
    from conftest import HAND_AUDIO
    root = write_llp(tmp_path / "llp", audio_rows=HAND_AUDIO + [["KvIjsmANkxI_10_20`", 0, 3, "Speech"],
                                                                  ["valvideo002_20_30", 4, 2, "Banjo"]])
    out = tmp_path / "p"
    assert cli.main(["pack", "--data", str(root), "--out", str(out), "--no-frames"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["annotation_version"] == "2020"
    assert m["quirks"]["audio_rows_unknown_video"]["count"] == 1
    assert m["quirks"]["audio_rows_empty_interval"]["count"] == 1


def test_refuses_to_overwrite_a_folder_that_is_not_a_packed_dataset(hand_llp, tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    assert cli.main(["pack", "--data", str(hand_llp), "--out", str(out), "--no-frames"]) == 1
    assert "not a packed dataset" in capsys.readouterr().err
    assert (out / "thesis.tex").exists()


def _damaged_copy(packed_tiny, tmp_path):
    """A writable copy of the packed tiny dataset, without the frames nobody loads."""
    out = tmp_path / "damaged"
    shutil.copytree(packed_tiny, out, ignore=shutil.ignore_patterns("frames.npy"))
    return out


def test_loading_names_the_first_non_finite_video(packed_tiny, tmp_path):
    out = _damaged_copy(packed_tiny, tmp_path)
    visual = np.load(out / "train" / "visual.npy")
    visual[17, 3, 100] = np.nan   # a bad disk or a hand edit after packing
    visual[40, 0, 0] = np.inf     # a later bad video: the first one is named
    np.save(out / "train" / "visual.npy", visual)
    name = str(np.load(out / "train" / "filenames.npy")[17])
    with pytest.raises(AvvpError) as e:
        dataset.load_split(out, "train")
    assert str(e.value) == f"{out}/train/visual.npy: non-finite value in video 17 ({name}); re-run avvp pack"
    assert len(dataset.load_split(out, "val")) == 24  # the other splits still load


def test_loading_checks_shapes_against_the_manifest(packed_tiny, tmp_path):
    out = _damaged_copy(packed_tiny, tmp_path)
    np.save(out / "val" / "audio.npy", np.load(out / "val" / "audio.npy")[:-1])  # one video short
    with pytest.raises(AvvpError, match=r"val/audio\.npy: shape \(23, 10, 128\), expected \(24, 10, 128\)"):
        dataset.load_split(out, "val")
    np.save(out / "test" / "motion.npy", np.zeros((24, 10, 256), np.float32))   # wrong feature size
    with pytest.raises(AvvpError, match=r"test/motion\.npy: shape \(24, 10, 256\), expected \(24, 10, 512\)"):
        dataset.load_split(out, "test")


def test_loaded_split_equals_the_packed_arrays(packed_tiny):
    split = dataset.load_split(packed_tiny, "val")
    assert split.visual.dtype == torch.float32 and split.labels.dtype == torch.float32
    np.testing.assert_array_equal(split.visual.numpy(), np.load(packed_tiny / "val" / "visual.npy"))
    np.testing.assert_array_equal(split.gt_audio, np.load(packed_tiny / "val" / "gt_audio.npy"))
    assert split.filenames == [str(f) for f in np.load(packed_tiny / "val" / "filenames.npy")]
    assert split.true_audio is None and dataset.load_split(packed_tiny, "train").true_audio is not None


def test_manifest_names_the_data_not_its_place(packed_tiny, tmp_path):
    """The same data packed from elsewhere, into elsewhere, gives the same manifest bytes (the runs' data hash)."""
    moved = tmp_path / "somewhere" / "else"
    shutil.copytree(packed_tiny.parent / "llp", moved)
    out = tmp_path / "other_packed"
    assert cli.main(["pack", "--data", str(moved), "--out", str(out), "--no-frames"]) == 0
    a = json.loads((packed_tiny / "manifest.json").read_text())
    b = json.loads((out / "manifest.json").read_text())
    assert a["frames"] and not b["frames"]
    b["frames"] = True
    assert b == a
    assert json.loads((out / "source.json").read_text())["data"] == str(moved.resolve())


def test_a_changed_feature_file_changes_the_feature_hash(packed_tiny, tmp_path):
    data = tmp_path / "llp"
    shutil.copytree(packed_tiny.parent / "llp", data)
    f = next(iter(sorted((data / "feats" / "vggish").iterdir())))
    x = np.load(f)
    x[0, 0] += 1
    np.save(f, x)
    out = tmp_path / "p"
    assert cli.main(["pack", "--data", str(data), "--out", str(out), "--no-frames"]) == 0
    a = json.loads((packed_tiny / "manifest.json").read_text())["feature_hashes"]
    b = json.loads((out / "manifest.json").read_text())["feature_hashes"]
    assert b["audio"] != a["audio"] and b["visual"] == a["visual"] and b["motion"] == a["motion"]
