"""`avvp figure`: each kind writes a PNG from a small fake results tree; the choices behind it are checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from avvp import variants
from avvp.cli import main
from avvp.errors import AvvpError
from avvp.io import write_npz
from avvp.reporting import figures

N = 40
COMBOS = [[0], [0, 11], [3], [9, 13]]      # Speech; Speech + Singing; Dog; Cello + Violin_fiddle
METHODS = ["HAN", "HAN + Ours"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _ground_truth(rng):
    gt_a = np.zeros((N, 25, 10), np.uint8)
    gt_v = np.zeros((N, 25, 10), np.uint8)
    for i in range(N):
        for c in COMBOS[i % len(COMBOS)]:
            s = rng.integers(0, 6)
            gt_a[i, c, s:s + 4] = 1
            gt_v[i, c, s + 1:s + 3] = 1
    return gt_a, gt_v


@pytest.fixture()
def results(tmp_path):
    """Test predictions of two methods; HAN predicts the ground truth except for video 7, where it
    predicts Car all the time in both modalities (the largest disagreement)."""
    rng = np.random.default_rng(0)
    gt_a, gt_v = _ground_truth(rng)
    names = np.array([f"vid{i:03d}_0_10" for i in range(N)])
    centres = rng.normal(size=(len(COMBOS), 512)) * 3
    combo = np.arange(N) % len(COMBOS)
    for method in METHODS:
        audio, visual = gt_a.copy(), gt_v.copy()
        if method == "HAN":
            audio[7, 1], visual[7, 1] = 1, 1
        order = np.arange(N)[::-1] if method == "HAN + Ours" else np.arange(N)  # a different video order
        run = tmp_path / "runs" / variants.slug(method) / "seed0"
        write_npz(run / "test" / "predictions.npz", filenames=names[order], audio=audio[order],
                  visual=visual[order], gt_audio=gt_a[order], gt_visual=gt_v[order],
                  pooled_audio=(centres[combo] + rng.normal(size=(N, 512)))[order].astype(np.float32),
                  pooled_visual=(centres[combo] + rng.normal(size=(N, 512)))[order].astype(np.float32))
        for seed in range(3):
            metrics = {level: {k: 50.0 + seed + (method == "HAN + Ours") for k in
                               ["audio", "visual", "audio_visual", "type_av", "event_av"]}
                       for level in ["segment", "event"]}
            path = tmp_path / "runs" / variants.slug(method) / f"seed{seed}" / "test" / "metrics.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(metrics))
    return tmp_path


def _figure(results, out, kind, *extra):
    return main(["figure", "--kind", kind, "--results", str(results), "--out", str(out), *extra])


def _is_png(path: Path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # written atomically


def test_timeline(results, tmp_path):
    out = tmp_path / "figs" / "timeline.png"
    assert _figure(results, out, "timeline", "--methods", *METHODS, "--seeds", "0") == 0
    _is_png(out)
    chosen = figures.timeline(results, METHODS, 0, tmp_path / "again.png")
    assert chosen[0] == "vid007_0_10"                                   # the most different video comes first
    assert chosen == figures.timeline(results, METHODS, 0, tmp_path / "again.png")   # deterministic
    assert len(set(chosen)) == 3


def test_pick_videos_and_runs():
    a = {"audio": np.zeros((5, 25, 10), np.uint8), "visual": np.zeros((5, 25, 10), np.uint8)}
    b = {"audio": a["audio"].copy(), "visual": a["visual"].copy()}
    b["audio"][3, 0, :4] = 1      # 4 differing segments
    b["visual"][1, 2, :2] = 1     # 2 differing segments
    chosen = figures.pick_videos([a, b], count=3, seed=0)
    assert chosen[:2] == [3, 1] and chosen[2] in {0, 2, 4}
    assert figures._runs(np.array([0, 1, 1, 0, 1, 0, 0, 0, 1, 1])) == [(1, 2), (4, 1), (8, 2)]
    assert figures._runs(np.zeros(10)) == []


def test_shown_classes_caps_noise():
    gt = np.zeros((25, 10), np.uint8)
    gt[5, :3] = 1
    noisy = np.ones((25, 10), np.uint8)
    classes, hidden = figures.shown_classes([("gt", gt, "k"), ("A", noisy, "b")], limit=4)
    assert classes[0] == 5 and len(classes) == 4 and hidden == 21


def test_tsne(results, tmp_path):
    out = tmp_path / "tsne.png"
    assert _figure(results, out, "tsne", "--methods", *METHODS) == 0
    _is_png(out)
    gt_a = np.zeros((2, 25, 10), np.uint8)
    gt_v = np.zeros((2, 25, 10), np.uint8)
    gt_a[0, 11, 0] = gt_v[0, 0, 3] = 1
    assert figures.label_combinations(gt_a, gt_v) == ["Speech + Singing", "(none)"]


def test_spread(results, tmp_path):
    tables = tmp_path / "tables.yaml"
    tables.write_text(yaml.safe_dump({"tables": {"table2": {
        "title": "T", "source": "Table 2", "columns": ["segment.audio", "event.audio", "segment.visual"],
        "rows": [{"variant": "HAN", "published": {"segment": {"audio": 60.1, "visual": 52.9}, "event": {"audio": 51.3}},
                  "base": None},
                 {"variant": "HAN + Ours", "published": {"segment": {"audio": 59.2}}, "base": "HAN"}]}}}))
    out = tmp_path / "spread.png"
    assert _figure(results, out, "spread", "--tables", str(tables)) == 0
    _is_png(out)
    (results / "runs" / "han_ours" / "seed1" / "test" / "metrics.json").unlink()
    with pytest.raises(AvvpError, match="han_ours/seed1/test/metrics.json: missing"):
        figures.spread(results, tables, [0, 1], tmp_path / "x.png")


def test_errors(results, tmp_path, capsys):
    assert _figure(results, tmp_path / "t.png", "timeline", "--methods", "HAN") == 1
    assert "exactly two" in capsys.readouterr().err
    assert _figure(results, tmp_path / "t.png", "tsen") == 1
    assert "unknown figure 'tsen' (known: timeline, tsne, spread)" in capsys.readouterr().err
    with pytest.raises(AvvpError, match="ma_star/seed0/test/predictions.npz: missing .*avvp evaluate"):
        figures.timeline(results, ["HAN", "MA*"], 0, tmp_path / "t.png")
    npz = results / "runs" / "han_ours" / "seed0" / "test" / "predictions.npz"
    with np.load(npz) as z:
        arrays = dict(z)
    arrays["filenames"] = np.array([f"other{i}" for i in range(N)])
    write_npz(npz, **arrays)
    with pytest.raises(AvvpError, match="videos differ"):
        figures.timeline(results, METHODS, 0, tmp_path / "t.png")
    assert not (tmp_path / "t.png").exists()


# --------------------------------------------------------------------------------------------- curves

def _curve_run(root: Path, slug: str, seed: int, log: dict, selected: int, selected_by="val segment type_av") -> Path:
    run = root / "runs" / slug / f"seed{seed}"
    run.mkdir(parents=True)
    import pandas as pd

    pd.DataFrame(log).to_csv(run / "log.csv", index=False)
    (run / "done.json").write_text(json.dumps({"selected_epoch": selected, "selected_by": selected_by}))
    return run


def test_curves_mean_over_the_seeds_that_reached_each_epoch(tmp_path):
    from avvp.reporting import curves

    nan = float("nan")
    a = _curve_run(tmp_path, "han", 0, {"epoch": [1, 2, 3], "loss_bce": [3.0, 2.0, 1.0], "loss_cms": [nan, nan, 0.5],
                                        "val_segment_type_av": [10.0, 20.0, 15.0]}, selected=2)
    b = _curve_run(tmp_path, "han", 1, {"epoch": [1, 2], "loss_bce": [2.0, 1.0],
                                        "val_segment_type_av": [20.0, 30.0]}, selected=2)   # stopped early
    cs = [curves.curve(a), curves.curve(b)]
    assert cs[0].loss.tolist() == [3.0, 2.0, 1.5]                     # the sum of the terms in force
    epochs, mean = curves.mean_curve(cs, "metric")
    assert epochs.tolist() == [1, 2, 3] and mean.tolist() == [15.0, 25.0, 15.0]
    assert curves.cell_title("HAN", cs) == "HAN\nselected 2, 2 of 3 (1/2 at the last)"
    assert curves.metric_column("val segment type_av") == "val_segment_type_av"
    assert curves.metric_column("last epoch") is None
    assert curves.metric_label("test_event_type_av") == "test Type@AV Event"
    last = _curve_run(tmp_path, "ma", 0, {"epoch": [1, 2], "loss_bce": [1.0, 0.5]}, selected=2, selected_by="last epoch")
    out = tmp_path / "figures" / "curves_t.png"
    curves.draw([("HAN", [a, b]), ("MA", [last])] + [(f"row {i}", [a]) for i in range(11)], out, "Table 2")
    _is_png(out)


def test_curves_errors_name_the_file(tmp_path):
    from avvp.reporting import curves

    run = _curve_run(tmp_path, "han", 0, {"epoch": [1], "loss_bce": [1.0]}, selected=1)
    with pytest.raises(AvvpError, match="han/seed0/log.csv: no column 'val_segment_type_av'"):
        curves.curve(run)
    (run / "log.csv").unlink()
    with pytest.raises(AvvpError, match=r"han/seed0/log.csv: missing \(train it with: avvp train"):
        curves.curve(run)
    with pytest.raises(AvvpError, match="seed1/done.json: missing"):
        curves.curve(tmp_path / "runs" / "han" / "seed1")
