"""The LLP reader: ground truth from hand-made CSVs, every quirk counted, every hard error one line."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HAND_AUDIO, HAND_VISUAL, HAND_WEAK, write_llp, write_tsv

from avvp import cli
from avvp.constants import CLASS_INDEX, DENSE_CSV, WEAK_CSV
from avvp.data.llp import LLPPaths, read_annotations, read_split_annotations
from avvp.errors import AvvpError

DENSE = ["filename", "onset", "offset", "event_labels"]


def test_weak_labels_and_dense_ground_truth_by_hand(hand_llp):
    val = read_split_annotations(hand_llp, "val")
    assert val.filenames == ["valvideo001_0_10", "valvideo002_20_30"]
    assert val.labels.dtype == np.uint8 and val.labels.shape == (2, 25)
    assert set(np.flatnonzero(val.labels[0])) == {CLASS_INDEX["Speech"], CLASS_INDEX["Dog"]}
    sp, dog = CLASS_INDEX["Speech"], CLASS_INDEX["Dog"]
    # Rows [0,4) and [6,10) of Speech: ones on 0-3 and 6-9, end-exclusive.
    assert val.gt_audio[0, sp].tolist() == [1, 1, 1, 1, 0, 0, 1, 1, 1, 1]
    assert val.gt_audio[0, dog].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert val.gt_visual[0, dog].tolist() == [0] + [1] * 9
    assert val.gt_audio.sum() == 8 + 3 + 10 and val.gt_visual.sum() == 9 + 7
    test = read_split_annotations(hand_llp, "test")
    assert test.gt_audio[1, CLASS_INDEX["Helicopter"]].tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    # The other split's rows are recognised, so nothing is reported as unknown.
    assert not any("unknown_video" in k for k in val.quirks)
    train = read_split_annotations(hand_llp, "train")
    assert train.gt_audio is None and train.gt_visual is None and train.labels.sum() == 5


def test_every_quirk_is_counted_with_examples(tmp_path):
    audio = HAND_AUDIO + [
        ["KvIjsmANkxI_10_20`", 0, 3, "Speech"],            # malformed filename of the 2020 file
        ["nosuchvideo_0_10", 1, 2, "Dog"],
        ["valvideo002_20_30", 5, 5, "Banjo"],              # offset <= onset
        ["valvideo002_20_30", 7, 3, "Banjo"],
        ["valvideo001_0_10", 8, 12, "Dog"],                # beyond 10 s: clipped
        ["valvideo002_20_30", 0, 2, "Cheering"],           # a dense class missing from the weak labels
    ]
    root = write_llp(tmp_path / "llp", audio_rows=audio)
    ann = read_annotations(LLPPaths.from_root(root))
    q = ann.quirks
    assert q["audio_rows_unknown_video"]["count"] == 2
    assert any("KvIjsmANkxI_10_20`" in e and "AVVP_eval_audio.csv" in e
               for e in q["audio_rows_unknown_video"]["examples"])
    assert q["audio_rows_empty_interval"]["count"] == 2
    assert "onset 5 offset 5" in q["audio_rows_empty_interval"]["examples"][0]
    assert q["audio_rows_clipped_to_0_10"]["count"] == 1
    # testvideo01: Speech is audio-only, so no visual event; no video lacks audio.
    assert q["videos_without_visual_event"] == {"count": 1, "examples": ["test: testvideo01_0_10"]}
    assert "videos_without_audio_event" not in q
    # val 1 (Cheering only dense), test 1 (Helicopter weak only: no visual... but audio present) -> only val.
    assert q["dense_classes_differ_from_weak"]["count"] == 1
    assert "Cheering" in q["dense_classes_differ_from_weak"]["examples"][0]
    gt = ann.splits["val"].gt_audio
    assert gt[0, CLASS_INDEX["Dog"], 8:].tolist() == [1, 1]
    assert gt[1, CLASS_INDEX["Banjo"]].sum() == 10          # the empty rows added nothing
    assert ann.version == "2020"


def test_video_without_audio_event_and_weak_label_without_dense(tmp_path):
    audio = [r for r in HAND_AUDIO if not r[0].startswith("testvideo01")]
    root = write_llp(tmp_path / "llp", audio_rows=audio)
    test = read_split_annotations(root, "test")
    assert test.quirks["videos_without_audio_event"]["count"] == 1
    assert test.quirks["videos_without_visual_event"]["count"] == 1
    assert "weak only ['Speech']" in test.quirks["dense_classes_differ_from_weak"]["examples"][0]
    assert test.gt_audio[0].sum() == 0 and test.gt_visual[0].sum() == 0


def test_version_2020_2024_and_synthetic(tmp_path, tiny_llp):
    fixed = write_llp(tmp_path / "a", audio_rows=HAND_AUDIO + [["KvIjsmANkxI_10_20", 0, 3, "Speech"]])
    old = write_llp(tmp_path / "b", audio_rows=HAND_AUDIO + [["KvIjsmANkxI_10_20`", 0, 3, "Speech"]])
    assert read_annotations(LLPPaths.from_root(fixed)).version == "2024"
    assert read_annotations(LLPPaths.from_root(old)).version == "2020"
    syn = read_annotations(LLPPaths.from_root(tiny_llp))
    assert syn.version == "synthetic" and syn.synthetic["preset"] == "tiny"
    assert syn.train_truth is not None


def test_hashes_are_sha256_of_every_annotation_file(hand_llp):
    import hashlib
    ann = read_annotations(LLPPaths.from_root(hand_llp))
    names = [*WEAK_CSV.values(), *DENSE_CSV.values()]
    assert sorted(ann.hashes) == sorted(names)
    for name in names:
        assert ann.hashes[name] == hashlib.sha256((hand_llp / name).read_bytes()).hexdigest()


def test_overridden_paths(tmp_path, hand_llp):
    moved = tmp_path / "elsewhere.csv"
    (hand_llp / DENSE_CSV["audio"]).rename(moved)
    val = read_split_annotations(hand_llp, "val", eval_audio_csv=moved)
    assert val.gt_audio.sum() == 21
    with pytest.raises(AvvpError, match="AVVP_eval_audio.csv: annotation file not found"):
        read_split_annotations(hand_llp, "val")


# ---------------------------------------------------------------------------------------- hard errors
def _weak(split, rows):
    return dict(HAND_WEAK, **{split: rows})


def _break_csv(kind):
    """(weak, audio_rows, visual_rows, file named in the error, row/video named in the error)."""
    w = HAND_WEAK
    return {
        "unknown class (weak)": (_weak("val", [w["val"][0], ["valvideo002_20_30", "Banjo,Kazoo"]]),
                                 None, None, "AVVP_val_pd.csv", "line 3"),
        "unknown class (dense)": (None, HAND_AUDIO + [["valvideo001_0_10", 0, 1, "Trumpet"]], None,
                                  "AVVP_eval_audio.csv", f"line {len(HAND_AUDIO) + 2}"),
        "duplicate id": (_weak("train", w["train"] + [["trainvid002_50_60", "Dog"]]), None, None,
                         "AVVP_train.csv", "trainvid002"),
        "duplicate id across splits": (_weak("test", w["test"] + [["valvideo001_0_10", "Dog"]]), None, None,
                                       "AVVP_test_pd.csv", "valvideo001"),
        "empty split": (_weak("test", []), [], [], "AVVP_test_pd.csv", "empty split"),
        "bad onset": (None, None, HAND_VISUAL + [["valvideo001_0_10", "x", 3, "Dog"]],
                      "AVVP_eval_visual.csv", f"line {len(HAND_VISUAL) + 2}"),
    }[kind]


CSV_ERRORS = ["unknown class (weak)", "unknown class (dense)", "duplicate id", "duplicate id across splits",
              "empty split", "bad onset"]


def _assert_pack_fails(root, tmp_path, capsys, *needles):
    out = tmp_path / "packed"
    assert cli.main(["pack", "--data", str(root), "--out", str(out)]) == 1
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    err = [line for line in lines if line.startswith("avvp pack: error:")]
    assert len(err) == 1 and lines[-1] == err[0], lines       # one line, the last (after tqdm's bar)
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".packed")] == []   # no temp left


@pytest.mark.parametrize("kind", CSV_ERRORS)
def test_csv_errors_are_one_line_naming_file_and_row(kind, tmp_path, capsys):
    weak, audio, visual, name, where = _break_csv(kind)
    root = write_llp(tmp_path / "llp", weak=weak, audio_rows=audio, visual_rows=visual)
    with pytest.raises(AvvpError) as e:
        read_annotations(LLPPaths.from_root(root))
    msg = str(e.value)
    assert "\n" not in msg and name in msg and where in msg
    _assert_pack_fails(root, tmp_path, capsys, name, where)


def test_missing_column(tmp_path, capsys):
    root = write_llp(tmp_path / "llp")
    write_tsv(root / DENSE_CSV["visual"], ["filename", "onset", "event_labels"], [["valvideo001_0_10", 0, "Dog"]])
    with pytest.raises(AvvpError, match=r"AVVP_eval_visual.csv: missing column 'offset'"):
        read_split_annotations(root, "val")
    _assert_pack_fails(root, tmp_path, capsys, "AVVP_eval_visual.csv", "missing column 'offset'")


def _damage(root, kind):
    path = root / "feats" / {"missing": "vggish", "shape": "r2plus1d_18", "nan": "res152",
                             "unreadable": "vggish"}[kind] / "testvideo02.npy"
    if kind == "missing":
        path.unlink()
    elif kind == "shape":
        np.save(path, np.zeros((9, 512), np.float32))
    elif kind == "nan":
        x = np.zeros((80, 2048), np.float32)
        x[40, 7] = np.nan
        np.save(path, x)
    else:
        path.write_bytes(b"this is not a numpy file")
    return path


@pytest.mark.parametrize("kind,needle", [("missing", "missing audio feature file"),
                                         ("shape", "motion shape (9, 512), expected (10, 512)"),
                                         ("nan", "non-finite value at index [40, 7]"),
                                         ("unreadable", "unreadable .npy")])
def test_feature_errors_leave_nothing(kind, needle, hand_llp, tmp_path, capsys):
    path = _damage(hand_llp, kind)
    _assert_pack_fails(hand_llp, tmp_path, capsys, str(path), "testvideo02_10_20", needle)
