"""Both gatings in `avvp evaluate`, and the bootstrap over test videos in `avvp table` (issue 9, items 1, 2, 5)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats
from test_tables import TEN, _cli, _fake_tree, _md_row, _write_scores

from avvp import paths, variants
from avvp.cli import main
from avvp.errors import AvvpError
from avvp.evaluation import evaluate, metrics
from avvp.reporting import tables

# ------------------------------------------------------------------------------- avvp evaluate


def test_a_prediction_scored_under_both_gatings_where_they_differ():
    # Video 0 has class 3 audible in seconds 0-4. The frames find it (0.9), but the video-level gate is
    # off (global_prob 0.3) while MA's audio gate is on (a_prob 0.8): HAN's gating misses it, MA's finds it.
    # Video 1 has nothing and predicts nothing: F = 1 under both.
    n, t, c = 2, 10, 25
    frame = np.zeros((n, t, 2, c), dtype=np.float32)
    frame[0, :5, 0, 3] = 0.9
    probs = {"frame_prob": frame, "global_prob": np.zeros((n, c)), "a_prob": np.zeros((n, c)),
             "v_prob": np.zeros((n, c))}
    probs["global_prob"][0, 3], probs["a_prob"][0, 3] = 0.3, 0.8
    gt_a, gt_v = np.zeros((n, c, t), dtype=np.uint8), np.zeros((n, c, t), dtype=np.uint8)
    gt_a[0, 3, :5] = 1
    split = SimpleNamespace(gt_audio=gt_a, gt_visual=gt_v)
    scored = evaluate.score_gatings(probs, split)
    han_audio, ma_audio = scored["han"][0], scored["ma"][0]
    assert han_audio.sum() == 0 and (ma_audio == gt_a).all()
    audio = metrics.COLUMNS.index("segment.audio")
    np.testing.assert_array_equal(scored["han"][3][:, audio], [0.0, 1.0])
    np.testing.assert_array_equal(scored["ma"][3][:, audio], [1.0, 1.0])
    assert scored["han"][2]["segment"]["audio"] == 50.0 and scored["ma"][2]["segment"]["audio"] == 100.0
    # Visual: nothing anywhere, so both gatings agree.
    assert scored["han"][2]["event"]["visual"] == scored["ma"][2]["event"]["visual"] == 100.0


def test_evaluate_writes_both_gatings_and_per_video_scores(packed_tiny, tmp_path):
    run = tmp_path / "r"
    assert main(["train", "--variant", "HAN", "--seed", "3", "--data", str(packed_tiny), "--out", str(run),
                 "--epochs", "1", "--threads", "1"]) == 0
    assert main(["evaluate", "--run", str(run), "--split", "test"]) == 0
    own = json.loads((run / "test" / "metrics.json").read_text())
    both = json.loads((run / "test" / "metrics_by_gating.json").read_text())
    assert both["own"] == "han" and both["han"] == own and set(both["ma"]) == {"segment", "event"}
    z = np.load(run / "test" / "per_video.npz")
    assert list(z["columns"]) == list(metrics.COLUMNS) and str(z["own_gating"]) == "han"
    assert list(z["filenames"]) == list(np.load(run / "test" / "predictions.npz")["filenames"])
    for gating in ("han", "ma"):
        assert z[gating].shape == (len(z["filenames"]), 10)
        rebuilt = 100 * z[gating].mean(axis=0)
        expected = [both[gating][level][kind] for level, kind in (c.split(".") for c in metrics.COLUMNS)]
        np.testing.assert_allclose(rebuilt, expected, rtol=0, atol=1e-9)
    # --out elsewhere: the same four files, named as paths names them under <run>/<split>.
    assert main(["evaluate", "--run", str(run), "--split", "test", "--out", str(tmp_path / "elsewhere")]) == 0
    assert paths.metrics_json(tmp_path, "elsewhere").read_text() == (run / "test" / "metrics.json").read_text()
    for name in ("predictions.npz", "per_video.npz", "metrics_by_gating.json"):
        assert (tmp_path / "elsewhere" / name).is_file()


# ----------------------------------------------------------------------------------- avvp table

def _add_row(tree, row: dict):
    spec = yaml.safe_load(tree["tables"].read_text())
    spec["tables"][tree["name"]]["rows"].append(row)
    tree["tables"].write_text(yaml.safe_dump(spec))


def _csv_rows(csv, label):
    return csv[csv.label == label]


def test_a_row_compared_with_itself_has_p_1(tmp_path):
    tree = _fake_tree(tmp_path)
    _add_row(tree, {"variant": "HAN", "label": "HAN again", "published": None, "base": "HAN"})
    text, csv = _cli(tree, tmp_path)
    rows = _csv_rows(csv, "HAN again")
    assert len(rows) == 10 and rows["p_boot_vs_base"].astype(float).eq(1.0).all()
    assert rows["p_vs_base"].eq("n/a").all() and rows["boot_mark"].eq("").all()
    assert "HAN again vs HAN, both under HAN's video-level gate: differ in nothing; same modules, labels, " \
           "recipe, gating." in text


def test_zero_width_interval_when_every_video_scores_the_same(tmp_path):
    tree = _fake_tree(tmp_path)
    for seed in range(3):   # HAN (ours recipe) scores 40 + seed on every video: every resample gives 41.
        run = tree["results"] / "runs" / "han_ours_recipe" / f"seed{seed}"
        flat = np.full((40, 10), (40.0 + seed) / 100)
        _write_scores(run, {k: 40.0 + seed for k in TEN}, {"han": flat, "ma": flat})
    _, csv = _cli(tree, tmp_path)
    rows = _csv_rows(csv, "HAN (ours recipe)")
    assert np.allclose(rows["ci_low"].astype(float), 41.0, rtol=0, atol=1e-9)
    assert (rows["ci_low"].astype(float) == rows["ci_high"].astype(float)).all()
    # HAN's own interval has width: its videos are spread 35 points around the mean.
    han = _csv_rows(csv, "HAN")
    assert (han["ci_low"].astype(float) < han["mean"].astype(float)).all()
    assert (han["mean"].astype(float) < han["ci_high"].astype(float)).all()


def test_marks_and_legend_name_each_test(tmp_path):
    tree = _fake_tree(tmp_path)
    for seed in range(3):   # 5 points above HAN on every video and seed: a clear gain over videos,
        han = np.load(tree["results"] / "runs" / "han" / f"seed{seed}" / "test" / "per_video.npz")["han"]
        better = han + 0.05     # ... but a constant one over seeds, so the t-test is undefined (n/a).
        numbers = {k: 100 * better[:, i].mean() for i, k in enumerate(metrics.COLUMNS)}
        _write_scores(tree["results"] / "runs" / "han_cm_co" / f"seed{seed}", numbers, {"han": better, "ma": better})
    text, csv = _cli(tree, tmp_path)
    cell = _md_row(text, "HAN + CM-Co", "ours")[2]
    assert cell.endswith("**") and "†" not in cell and "‡" not in cell
    rows = _csv_rows(csv, "HAN + CM-Co")
    assert (rows["p_boot_vs_base"].astype(float) < 0.01).all() and rows["boot_mark"].eq("**").all()
    assert rows["p_vs_base"].eq("n/a").all() and rows["gating"].eq("han").all()
    # A few points of noise over 40 spread videos is not significant over videos.
    assert _csv_rows(csv, "HAN + CM-S")["boot_mark"].eq("").all()
    assert "† p < 0.05, ‡ p < 0.01: two-sided paired t-test" in text
    assert "* p < 0.05, ** p < 0.01: two-sided paired bootstrap over test videos" in text
    assert "2000 resamples, seed 0" in text
    assert "HAN + CM-Co vs HAN, both under HAN's video-level gate: differ in modules (head mmil → cmco), " \
           "recipe (han → ours); same labels, gating." in text
    assert "- Rows (labels / recipe / gating): HAN: weak / han / han;" in text


def test_comparison_uses_the_rows_gating_for_the_base(tmp_path):
    # MA gates per modality; MA + CM-Co, built on it, gates HAN's way. MA's han-gated videos equal
    # MA + CM-Co's exactly, its ma-gated ones are 20 points higher: tested under the row's (han) gating the
    # difference is 0 (p = 1), although MA's own (ma) numbers, shown in its row, are 20 points higher.
    tree = _fake_tree(tmp_path)
    rng = np.random.default_rng(0)
    for seed in range(3):
        han = rng.uniform(0.2, 0.6, size=(40, 10))
        for variant, own in (("MA", "ma"), ("MA + CM-Co", "han")):
            shown = han + 0.2 if own == "ma" else han
            numbers = {k: 100 * shown[:, i].mean() for i, k in enumerate(metrics.COLUMNS)}
            _write_scores(tree["results"] / "runs" / variants.slug(variant) / f"seed{seed}", numbers,
                          {"han": han, "ma": han + 0.2}, own=own)
    _add_row(tree, {"variant": "MA", "published": None, "base": None})
    _add_row(tree, {"variant": "MA + CM-Co", "published": None, "base": "MA"})
    text, csv = _cli(tree, tmp_path)
    ma, row = _csv_rows(csv, "MA"), _csv_rows(csv, "MA + CM-Co")
    np.testing.assert_allclose(ma["mean"].astype(float).to_numpy() - row["mean"].astype(float).to_numpy(), 20.0,
                               rtol=0, atol=1e-9)
    assert ma["gating"].eq("ma").all() and row["gating"].eq("han").all()
    assert row["p_boot_vs_base"].astype(float).eq(1.0).all() and row["p_vs_base"].eq("n/a").all()
    assert "MA + CM-Co vs MA, both under HAN's video-level gate: differ in modules" in text
    assert "gating (as scored: ma → han)" in text and "MA: refined / " in text


def test_missing_per_video_names_the_file_and_command(tmp_path):
    tree = _fake_tree(tmp_path)
    (tree["results"] / "runs" / "han_cm_s" / "seed2" / "test" / "per_video.npz").unlink()
    with pytest.raises(AvvpError, match=r"han_cm_s/seed2/test/per_video.npz: missing \(make it with: "
                                        r"avvp evaluate --run \S+han_cm_s/seed2 --split test\)$"):
        tables.build(tree["name"], tree["results"], tree["config"], tree["tables"], data=str(tree["packed"]))


def test_stale_per_video_scores_are_refused(tmp_path):
    tree = _fake_tree(tmp_path)
    metrics = tree["results"] / "runs" / "han_cm_s" / "seed1" / "test" / "metrics.json"
    m = json.loads(metrics.read_text())
    m["segment"]["audio"] += 1.0
    metrics.write_text(json.dumps(m))
    with pytest.raises(AvvpError, match=r"HAN \+ CM-S \(han gating\): per_video.npz gives segment.audio .* "
                                        "but metrics.json"):
        tables.build(tree["name"], tree["results"], tree["config"], tree["tables"], data=str(tree["packed"]))


def test_vectorised_t_test_equals_the_per_column_one():
    rng = np.random.default_rng(3)
    values, base = rng.normal(50, 2, size=(3, 10)), rng.normal(50, 2, size=(3, 10))
    base[:, 4] = values[:, 4] - 1.0          # a constant difference: undefined
    # The per-column definition, one scipy call per metric.
    expected = [None if np.allclose(values[:, j] - base[:, j], values[0, j] - base[0, j], rtol=0.0, atol=1e-12)
                else float(scipy_stats.ttest_rel(values[:, j], base[:, j]).pvalue) for j in range(10)]
    got = tables.paired_ps(values, base)
    assert got[4] is None and expected[4] is None
    np.testing.assert_allclose([g for g in got if g is not None], [e for e in expected if e is not None], rtol=1e-12)
    assert tables.paired_ps(values[:1], base[:1]) == [None] * 10
