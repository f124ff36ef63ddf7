"""`avvp score` end to end, on a small hand-written annotations folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avvp.cli import main
from avvp.constants import CLASS_INDEX, CLASSES
from avvp.evaluation.metrics import llp_scores

C, T = 25, 10
VAL = ["aaaaaaaaaaa_0_10", "bbbbbbbbbbb_30_40", "ccccccccccc_5_15"]
TEST = ["ddddddddddd_0_10", "eeeeeeeeeee_20_30"]

# Dense events (filename, onset, offset, class): the ground truth of every val and test video.
AUDIO_EVENTS = [
    ("aaaaaaaaaaa_0_10", 0, 4, "Speech"),
    ("aaaaaaaaaaa_0_10", 6, 8, "Speech"),
    ("bbbbbbbbbbb_30_40", 0, 10, "Cat"),
    ("ccccccccccc_5_15", 3, 5, "Dog"),
    ("ddddddddddd_0_10", 0, 10, "Speech"),
    ("eeeeeeeeeee_20_30", 1, 2, "Banjo"),
]
VISUAL_EVENTS = [
    ("aaaaaaaaaaa_0_10", 2, 6, "Dog"),
    ("ccccccccccc_5_15", 0, 5, "Dog"),
    ("ddddddddddd_0_10", 5, 9, "Car"),
]


def write_annotations(folder, audio_events=AUDIO_EVENTS, visual_events=VISUAL_EVENTS):
    """The four official CSVs (tab-separated, one header row), as the release has them."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, names in (("val", VAL), ("test", TEST)):
        rows = ["filename\tevent_labels"]
        for name in names:
            labels = sorted({e[3] for e in audio_events + visual_events if e[0] == name}, key=CLASS_INDEX.get)
            rows.append(f"{name}\t{','.join(labels)}")
        (folder / f"AVVP_{split}_pd.csv").write_text("\n".join(rows) + "\n")
    for modality, events in (("audio", audio_events), ("visual", visual_events)):
        rows = ["filename\tonset\toffset\tevent_labels"] + [f"{f}\t{on}\t{off}\t{c}" for f, on, off, c in events]
        (folder / f"AVVP_eval_{modality}.csv").write_text("\n".join(rows) + "\n")
    return folder


def matrices(names, events):
    x = np.zeros((len(names), C, T), dtype=np.uint8)
    for f, on, off, c in events:
        if f in names:
            x[names.index(f), CLASS_INDEX[c], on:off] = 1
    return x


def score(tmp_path, capsys, split, predictions, out=True, annotations=None):
    """Run `avvp score` in-process; (exit status, stdout, stderr, out path)."""
    out_path = tmp_path / "scores" / "metrics.json"
    argv = ["score", "--annotations", str(annotations or tmp_path / "ann"), "--split", split,
            "--predictions", str(predictions)]
    if out:
        argv += ["--out", str(out_path)]
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err, out_path


@pytest.fixture
def ann(tmp_path):
    return write_annotations(tmp_path / "ann")


def save(path, filenames, audio, visual, **extra):
    np.savez(path, filenames=np.array(filenames), audio=audio, visual=visual, **extra)
    return path


def test_oracle_scores_100(tmp_path, capsys, ann):
    for split, names in (("val", VAL), ("test", TEST)):
        pred = save(tmp_path / f"{split}.npz", names, matrices(names, AUDIO_EVENTS), matrices(names, VISUAL_EVENTS))
        rc, out, err, out_path = score(tmp_path, capsys, split, pred)
        assert rc == 0, err
        got = json.loads(out)
        assert got == json.loads(out_path.read_text())
        assert list(got) == ["segment", "event"]
        for level in got.values():
            assert list(level) == ["audio", "visual", "audio_visual", "type_av", "event_av"]
            assert all(v == 100.0 for v in level.values())


def test_hand_computed_scores_in_any_order(tmp_path, capsys, ann):
    # Predictions for val, listed in a different order than the CSV.
    order = [VAL[2], VAL[0], VAL[1]]
    pred_audio = [("aaaaaaaaaaa_0_10", 0, 2, "Speech"),      # vs [0,4): IoU 0.5, a TP; [6,8) missed
                  ("bbbbbbbbbbb_30_40", 0, 10, "Cat"),       # exact
                  ("ccccccccccc_5_15", 3, 5, "Dog")]         # exact
    pred_visual = [("ccccccccccc_5_15", 0, 5, "Dog")]        # exact; video a's Dog is missed
    audio, visual = matrices(order, pred_audio), matrices(order, pred_visual)
    rc, out, err, out_path = score(tmp_path, capsys, "val", save(tmp_path / "p.npz", order, audio, visual))
    assert rc == 0, err
    got = json.loads(out_path.read_text())
    # Segment audio: video a, Speech TP 2, FN 4 -> 4/8; b and c exact -> 1.
    assert got["segment"]["audio"] == 100 * float(np.mean([4 / 8, 1.0, 1.0]))
    # Event audio: video a, Speech events [0,4) matched, [6,8) missed: TP 1, FN 1 -> 2/3.
    assert got["event"]["audio"] == 100 * float(np.mean([2 / 3, 1.0, 1.0]))
    # Visual: video a's Dog missed entirely (0), b has nothing (1), c exact (1).
    assert got["segment"]["visual"] == 100 * float(np.mean([0.0, 1.0, 1.0]))
    # The same numbers as the metrics on the matrices in CSV order; the JSON keeps full precision.
    want = llp_scores(matrices(VAL, pred_audio), matrices(VAL, pred_visual),
                      matrices(VAL, AUDIO_EVENTS), matrices(VAL, VISUAL_EVENTS))
    assert got == want
    assert json.loads(out) == want


def test_without_out_only_prints(tmp_path, capsys, ann):
    pred = save(tmp_path / "p.npz", TEST, matrices(TEST, AUDIO_EVENTS), np.zeros((2, C, T), np.uint8))
    rc, out, err, out_path = score(tmp_path, capsys, "test", pred, out=False)
    assert rc == 0, err
    assert json.loads(out)["segment"]["audio"] == 100.0
    assert not out_path.parent.exists()


def test_bool_and_float_predictions_accepted(tmp_path, capsys, ann):
    a = matrices(TEST, AUDIO_EVENTS)
    pred = save(tmp_path / "p.npz", TEST, a.astype(bool), a.astype(np.float32))
    rc, out, err, _ = score(tmp_path, capsys, "test", pred)
    assert rc == 0, err
    assert json.loads(out)["event"]["audio"] == 100.0


def test_annotation_quirks_are_reported(tmp_path, capsys):
    folder = write_annotations(tmp_path / "ann", AUDIO_EVENTS + [("zzzzzzzzzzz_0_10", 0, 3, "Cat")])
    pred = save(tmp_path / "p.npz", VAL, matrices(VAL, AUDIO_EVENTS), matrices(VAL, VISUAL_EVENTS))
    rc, out, err, _ = score(tmp_path, capsys, "val", pred, annotations=folder)
    assert rc == 0, err
    assert "zzzzzzzzzzz_0_10" in err


def _bad(kind, tmp_path):
    """A prediction file for val with one defect; returns (path, words the error must contain)."""
    a, v = matrices(VAL, AUDIO_EVENTS), matrices(VAL, VISUAL_EVENTS)
    p = tmp_path / f"{kind}.npz"
    if kind == "missing_video":
        return save(p, VAL[:2], a[:2], v[:2]), [VAL[2], "no prediction"]
    if kind == "unknown_video":
        return save(p, VAL[:2] + ["zzzzzzzzzzz_0_10"], a, v), ["zzzzzzzzzzz_0_10", "not in the val split"]
    if kind == "test_video_in_val":
        return save(p, VAL + [TEST[0]], np.concatenate([a, a[:1]]), np.concatenate([v, v[:1]])), [TEST[0]]
    if kind == "duplicate":
        names = VAL + [VAL[1]]
        return save(p, names, np.concatenate([a, a[1:2]]), np.concatenate([v, v[1:2]])), [VAL[1], "twice"]
    if kind == "wrong_shape":
        return save(p, VAL, a[:, :, :9], v), ["'audio'", "shape"]
    if kind == "transposed":
        return save(p, VAL, a, v.transpose(0, 2, 1)), ["'visual'", "shape"]
    if kind == "not_binary":
        v = v.astype(np.float32)
        v[1, 4, 7] = 0.7
        return save(p, VAL, a, v), [VAL[1], "'visual'", "0.7", "Cat"]
    if kind == "nan":
        a = a.astype(np.float64)
        a[2, 0, 0] = np.nan
        return save(p, VAL, a, v), [VAL[2], "'audio'"]
    if kind == "missing_array":
        np.savez(p, filenames=np.array(VAL), audio=a)
        return p, ["visual", "missing"]
    if kind == "pickled_filenames":
        np.savez(p, filenames=np.array(VAL, dtype=object), audio=a, visual=v)
        return p, ["'filenames'", "object"]
    if kind == "not_npz":
        p.write_text("filename\taudio\n")
        return p, ["not an .npz"]
    if kind == "npy_not_npz":
        p = tmp_path / "plain.npy"
        np.save(p, a)
        return p, ["not an .npz"]
    if kind == "truncated":
        save(p, VAL, a, v)
        p.write_bytes(p.read_bytes()[:-30])
        return p, ["npz"]
    if kind == "no_file":
        return tmp_path / "nope.npz", ["not found"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing_video", "unknown_video", "test_video_in_val", "duplicate",
                                  "wrong_shape", "transposed", "not_binary", "nan", "missing_array",
                                  "pickled_filenames", "not_npz", "npy_not_npz", "truncated",
                                  "no_file"])
def test_bad_prediction_file_is_one_line_error(kind, tmp_path, capsys, ann):
    path, words = _bad(kind, tmp_path)
    rc, out, err, out_path = score(tmp_path, capsys, "val", path)
    assert rc == 1
    assert out == ""
    # Annotation quirks may come first on stderr; the error itself is one line, naming the file.
    errors = [line for line in err.splitlines() if line.startswith("avvp score: error: ")]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], err
    assert str(path) in errors[0]
    for w in words:
        assert w in errors[0], (w, err)
    assert not out_path.exists()
    assert not out_path.parent.exists() or not any(out_path.parent.iterdir())   # no partial file either


def test_bad_annotations_is_an_error(tmp_path, capsys, ann):
    pred = save(tmp_path / "p.npz", VAL, matrices(VAL, AUDIO_EVENTS), matrices(VAL, VISUAL_EVENTS))
    (ann / "AVVP_eval_visual.csv").unlink()
    rc, out, err, out_path = score(tmp_path, capsys, "val", pred)
    assert rc == 1 and "AVVP_eval_visual.csv" in err
    assert not out_path.exists()


def test_all_classes_known():
    # The hand-written events above use official class names.
    assert {e[3] for e in AUDIO_EVENTS + VISUAL_EVENTS} <= set(CLASSES)
