"""`avvp diagnose` and the refinement's label quality: hand-made cases with known answers, then the command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avvp import paths
from avvp.cli import main
from avvp.constants import CLASS_INDEX
from avvp.evaluation.label_quality import removal_scores
from avvp.evaluation.metrics import llp_scores
from avvp.io import write_json, write_npz
from avvp.methods import ma
from avvp.reporting import diagnose

SPEECH, DOG, CAR = CLASS_INDEX["Speech"], CLASS_INDEX["Dog"], CLASS_INDEX["Car"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]


def _one_class(rng, n=30, every_video_active=True):
    """Random audio/visual predictions and ground truth that use the class Speech only."""
    arrays = [np.zeros((n, 25, 10), np.uint8) for _ in range(4)]
    for a in arrays:
        a[:, SPEECH] = rng.random((n, 10)) < 0.4
    if every_video_active:
        arrays[2][:, SPEECH, 0] = 1   # Speech present in audio and visual of every video: all active
        arrays[3][:, SPEECH, 0] = 1
    else:
        for a in arrays:
            a[:5] = 0                 # five videos where nothing is predicted or present
    return arrays


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_class_f_of_a_single_class_is_the_metrics_number(seed):
    arrays = _one_class(np.random.default_rng(seed))
    ours = diagnose.per_class_f(*arrays)
    official = llp_scores(*arrays)
    for level in ("segment", "event"):
        for m in ("audio", "visual", "audio_visual"):
            f, active = ours[(level, m)]
            assert f[SPEECH] == pytest.approx(official[level][m] / 100, abs=1e-12)
            assert active[SPEECH] == 30
            assert np.isnan(np.delete(f, SPEECH)).all()   # classes never active have no F


def test_per_class_f_averages_over_active_videos_only():
    """The metrics module counts a video where nothing is active as 1.0; the per-class F leaves it out."""
    arrays = _one_class(np.random.default_rng(3), every_video_active=False)
    ours = diagnose.per_class_f(*arrays)
    official = llp_scores(*arrays)
    for (level, m), (f, active) in ours.items():
        n_inactive = 30 - active[SPEECH]
        assert n_inactive >= 5
        assert (f[SPEECH] * active[SPEECH] + n_inactive) / 30 == pytest.approx(official[level][m] / 100, abs=1e-12)


def _ground_truth():
    """Video 0: Speech heard only, Dog seen only; video 1: Car heard and seen; video 2: Speech in both."""
    gt_a = np.zeros((3, 25, 10), np.uint8)
    gt_v = np.zeros((3, 25, 10), np.uint8)
    gt_a[0, SPEECH, 0:5] = 1
    gt_v[0, DOG, 2:7] = 1
    gt_a[1, CAR, :] = 1
    gt_v[1, CAR, 4:] = 1
    gt_a[2, SPEECH, 5:] = 1
    gt_v[2, SPEECH, 5:] = 1
    return gt_a, gt_v


def test_leak_of_every_label_everywhere_is_one_and_of_the_oracle_zero():
    gt_a, gt_v = _ground_truth()
    weak = (gt_a | gt_v).any(-1, keepdims=True)
    everywhere = np.broadcast_to(weak, gt_a.shape).astype(np.uint8)   # every video label, every second, both
    leak = diagnose.leak_counts(everywhere, everywhere, gt_a, gt_v)
    oracle = diagnose.leak_counts(gt_a, gt_v, gt_a, gt_v)
    for m in ("audio", "visual"):
        hits, pairs = leak[(m, "leak")]
        assert pairs.sum() == 1 and hits.sum() == 1    # audio: Dog of video 0; visual: Speech of video 0
        assert oracle[(m, "leak")][0].sum() == 0
        assert oracle[(m, "miss")][0].sum() == 0 and leak[(m, "miss")][0].sum() == 0
    assert leak[("audio", "leak")][1][DOG] == 1 and leak[("visual", "leak")][1][SPEECH] == 1
    nothing = np.zeros_like(gt_a)
    missed = diagnose.leak_counts(nothing, nothing, gt_a, gt_v)
    assert missed[("audio", "miss")][0].sum() == missed[("audio", "miss")][1].sum() == 3   # Speech x2, Car


def test_cooccurrence_counts_seconds_and_the_oracle_equals_the_truth():
    gt_a, gt_v = _ground_truth()
    truth = diagnose.cooccurrence(gt_a, gt_v)
    assert truth[SPEECH, DOG] == 3          # video 0: heard 0-4, seen 2-6 -> seconds 2, 3, 4
    assert truth[CAR, CAR] == 6             # video 1: seconds 4-9
    assert truth[SPEECH, SPEECH] == 5       # video 2
    assert truth.sum() == 14
    np.testing.assert_array_equal(diagnose.cooccurrence(gt_a.copy(), gt_v.copy()), truth)
    assert diagnose.tv_distance(truth, truth) == 0.0
    shifted = gt_v.copy()
    shifted[1] = 0                          # lose the 6 Car-Car seconds: TV = 6/14
    assert diagnose.tv_distance(diagnose.cooccurrence(gt_a, shifted), truth) == pytest.approx(6 / 14)
    assert diagnose.tv_distance(np.zeros((25, 25)), truth) == 1.0


def test_refinement_precision_and_recall_against_annotations():
    gt_a, gt_v = _ground_truth()
    labels = (gt_a | gt_v).any(-1).astype(np.uint8)     # video 0: Speech, Dog; 1: Car; 2: Speech
    audio, visual = labels.copy(), labels.copy()
    audio[0, DOG] = 0        # correct: Dog is not heard in video 0
    audio[2, SPEECH] = 0     # wrong: Speech is heard in video 2
    visual[1, CAR] = 0       # wrong; and visual Speech of video 0 (should go) is kept
    s = removal_scores(labels, audio, visual, gt_a, gt_v)
    assert (s["audio"]["removals"], s["audio"]["correct_removals"], s["audio"]["should_remove"]) == (2, 1, 1)
    assert s["audio"]["precision"] == 0.5 and s["audio"]["recall"] == 1.0
    assert s["visual"]["precision"] == 0.0 and s["visual"]["recall"] == 0.0
    assert s["audio"]["per_class"]["Speech"] == {"removals": 1, "correct_removals": 0, "should_remove": 0,
                                                 "precision": 0.0, "recall": None}


# --------------------------------------------------------------------------------------------- command

ROWS = [{"variant": "HAN", "base": None}, {"variant": "HAN + CM-S", "base": "HAN"},
        {"variant": "MA* + Ours", "base": "HAN"}]


@pytest.fixture()
def tree(tmp_path):
    """Two seeds of three rows: HAN predicts nothing, HAN + CM-S the oracle, MA* + Ours every label everywhere;
    refine summaries with the synthetic-truth and the annotation scores."""
    gt_a, gt_v = _ground_truth()
    weak = np.broadcast_to((gt_a | gt_v).any(-1, keepdims=True), gt_a.shape).astype(np.uint8)
    preds = {"HAN": (np.zeros_like(gt_a),) * 2, "HAN + CM-S": (gt_a, gt_v), "MA* + Ours": (weak, weak)}
    results = tmp_path / "results"
    for seed in (0, 1):
        for name, (a, v) in preds.items():
            write_npz(paths.predictions_npz(paths.run_folder(paths.slug(name), seed, results), "test"), audio=a, visual=v,
                      filenames=np.array(["v0", "v1", "v2"]), gt_audio=gt_a, gt_visual=gt_v)
        scores = {"precision": 0.5, "recall": 0.25, "removals": 4, "correct_removals": 2, "should_remove": 8}
        write_json(ma.summary_file(ma.refine_folder(seed, results)),
                   {"against_truth": {"audio": scores, "visual": scores},
                    "against_annotations": {"val": {"audio": scores, "visual": scores}, "test": {"skipped": "x"}}})
    tables = tmp_path / "tables.yaml"
    tables.write_text(yaml.safe_dump({"tables": {"table2": {"title": "T", "source": "Table 2",
                                                            "columns": ["segment.audio"], "rows": ROWS}}}))
    return tmp_path, results, tables


def _diagnose(results, tables, out, *extra):
    return main(["diagnose", "--results", str(results), "--tables", str(tables), "--seeds", "0", "1",
                 "--out", str(out), *extra])


def test_command_writes_every_csv_and_figure(tree):
    tmp, results, tables = tree
    out = tmp / "diagnostics"
    assert _diagnose(results, tables, out) == 0
    for name in ("per_class_diff", "leak", "cooccurrence", "refinement"):
        assert (out / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    leak = pd.read_csv(out / "leak.csv")
    overall = leak[(leak["class"] == "all") & (leak["kind"] == "leak")].set_index(["variant", "modality"])["share"]
    assert overall[("MA* + Ours", "audio")] == 1.0 and overall[("HAN + CM-S", "visual")] == 0.0
    tv = pd.read_csv(out / "cooccurrence.csv").set_index("variant")["tv_distance"]
    assert tv["HAN + CM-S"] == 0.0 and tv["HAN"] == 1.0
    f = pd.read_csv(out / "per_class_f.csv")
    oracle = f[(f["variant"] == "HAN + CM-S") & (f["active_videos"] > 0)]
    assert len(oracle) > 0 and (oracle["f"] == 100).all()
    refinement = pd.read_csv(out / "refinement.csv")
    assert set(refinement["scored_on"]) == {"synthetic_train", "val"}       # the skipped test split has no rows
    assert len(refinement) == 2 * 2 * 2 and (refinement["precision"] == 0.5).all()


def test_missing_predictions_is_one_line_naming_the_file(tree, capsys):
    tmp, results, tables = tree
    missing = paths.predictions_npz(paths.run_folder(paths.slug("MA* + Ours"), 1, results), "test")
    missing.unlink()
    assert _diagnose(results, tables, tmp / "out") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err


def test_missing_refine_summary_names_it_unless_skipped(tree, capsys):
    tmp, results, tables = tree
    summary = ma.summary_file(ma.refine_folder(1, results))
    summary.unlink()
    assert _diagnose(results, tables, tmp / "out") == 1
    assert str(summary) in capsys.readouterr().err
    assert _diagnose(results, tables, tmp / "out", "--no-refine") == 0
    assert not (tmp / "out" / "refinement.csv").exists()


def _packed_test(folder, filenames, labels):
    (folder / "test").mkdir(parents=True)
    np.save(folder / "test" / "filenames.npy", np.array(filenames))
    np.save(folder / "test" / "labels.npy", labels.astype(np.uint8))


def test_leak_counts_the_packed_weak_labels_not_the_annotations(tree, capsys):
    """A weak label the annotations never show (Dog of video 1, as on real LLP) is absent from both
    modalities: predicted everywhere it leaks in both; the CSV names the labels used."""
    tmp, results, tables = tree
    gt_a, gt_v = _ground_truth()
    labels = (gt_a | gt_v).any(-1)
    labels[1, DOG] = True
    packed = tmp / "packed"
    _packed_test(packed, ["v2", "v0", "v1"], labels[[2, 0, 1]])       # another order: matched by filename
    assert _diagnose(results, tables, tmp / "out", "--data", str(packed), "--no-refine") == 0
    leak = pd.read_csv(tmp / "out" / "leak.csv")
    assert (leak["weak_labels"] == str(packed / "test" / "labels.npy")).all()
    dog = leak[(leak["class"] == "Dog") & (leak["kind"] == "leak")].set_index(["variant", "modality"])
    assert dog.loc[("HAN + CM-S", "audio"), "pairs"] == 2 and dog.loc[("HAN + CM-S", "visual"), "pairs"] == 1
    # 'every label everywhere' here is the annotations' union (the fixture), so Dog of video 1 is not predicted
    assert dog.loc[("MA* + Ours", "audio"), "share"] == 0.5
    # without packed data (no --data, no run.json): the union of the annotations, said in the CSV
    assert _diagnose(results, tables, tmp / "out", "--no-refine") == 0
    assert (pd.read_csv(tmp / "out" / "leak.csv")["weak_labels"] == "gt_audio|gt_visual").all()
    # a packed test split without one of the predicted videos: one line naming the file and the video
    other = tmp / "other"
    _packed_test(other, ["v0", "v2"], labels[[0, 2]])
    capsys.readouterr()
    assert _diagnose(results, tables, tmp / "out", "--data", str(other), "--no-refine") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(other / "test" / "filenames.npy") in err and "v1" in err


def test_packed_data_defaults_to_the_runs_run_json(tree):
    tmp, results, tables = tree
    gt_a, gt_v = _ground_truth()
    labels = (gt_a | gt_v).any(-1)
    labels[0, CAR] = True
    packed = tmp / "packed"
    _packed_test(packed, ["v0", "v1", "v2"], labels)
    write_json(paths.run_json(paths.run_folder(paths.slug("HAN"), 0, results)), {"data": str(packed)})
    assert _diagnose(results, tables, tmp / "out", "--no-refine") == 0
    leak = pd.read_csv(tmp / "out" / "leak.csv")
    assert (leak["weak_labels"] == str(packed / "test" / "labels.npy")).all()
    car = leak[(leak["class"] == "Car") & (leak["kind"] == "leak") & (leak["variant"] == "HAN + CM-S")]
    assert list(car["pairs"]) == [1, 1]     # Car of video 0, in neither annotation: absent from both modalities


def test_table5_with_runs_of_rows_writes_every_file(tmp_path):
    """`avvp diagnose --table table5`: a `runs_of` row (CMPAE under MA's gating, ...) reads the named row's runs
    (before, it looked for results/runs/cmpae_ma_gating/seed0, which no run makes, and stopped)."""
    table = yaml.safe_load((REPO / "config" / "tables.yaml").read_text())["tables"]["table5"]
    rows = yaml.safe_load((REPO / "config" / "variants.yaml").read_text())["variants"]
    gt_a, gt_v = _ground_truth()
    results = tmp_path / "results"
    trained = {rows[r["variant"]].get("runs_of", r["variant"]) for r in table["rows"]}
    for k, name in enumerate(sorted(trained)):       # each run its own predictions: the oracle shifted by k seconds
        a, v = np.roll(gt_a, k, axis=2), np.roll(gt_v, k, axis=2)
        write_npz(paths.predictions_npz(paths.run_folder(paths.slug(name), 0, results), "test"), audio=a, visual=v,
                  filenames=np.array(["v0", "v1", "v2"]), gt_audio=gt_a, gt_visual=gt_v)
    out = tmp_path / "out"
    assert main(["diagnose", "--results", str(results), "--table", "table5", "--seeds", "0", "--out", str(out),
                 "--no-refine"]) == 0
    for name in ("per_class_f.csv", "leak.csv", "cooccurrence.csv", "cooccurrence_matrices.csv",
                 "per_class_diff.png", "leak.png", "cooccurrence.png"):
        assert (out / name).stat().st_size > 0, name
    f = pd.read_csv(out / "per_class_f.csv").set_index(["variant", "level", "modality", "class"])["f"]
    assert len(set(f.index.get_level_values("variant"))) == len({r["variant"] for r in table["rows"]})
    # the runs_of row's numbers are its row's runs' (the same predictions)
    assert f.loc["CMPAE (MA gating)"].equals(f.loc["CMPAE"])
