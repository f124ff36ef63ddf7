"""`avvp runs`: results/runs.csv from a hand-made results tree (one line per row, seed, split and gating)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from avvp.cli import main
from avvp.errors import AvvpError
from avvp.evaluation.metrics import COLUMNS
from avvp.reporting import runs

ENV = {"python": "3.11.7", "torch": "2.13.0+cpu", "cuda": None, "cudnn": None,
       "device_name": "Some CPU (2 cores)", "cpu_capability": "AVX512", "torch_threads": 1, "deterministic": False}


def numbers(base: float) -> dict:
    """The ten numbers: base + the column's index (segment.audio = base, ..., event.event_av = base + 9)."""
    out: dict = {"segment": {}, "event": {}}
    for i, column in enumerate(COLUMNS):
        level, key = column.split(".")
        out[level][key] = base + i
    return out


def write_run(results: Path, slug: str, variant: str, seed: int, splits=("val", "test"), gating: str = "han",
              env: dict | None = ENV) -> Path:
    run = results / "runs" / slug / f"seed{seed}"
    run.mkdir(parents=True)
    info = {"variant": variant, "slug": slug, "seed": seed, "labels": "weak", "gating": gating,
            "recipe": {"lr": 3e-4, "batch": 16, "lr_scale": 1.0}, "recipe_name": "han", "losses": ["cms"],
            "spec": {"backbone": "han", "head": "mmil"}, "select": "val", "protocol": "default", "epochs": 3,
            "precision": "bf16", "device": "cpu", "cuda_graphs": False, "data_manifest_sha256": "feed",
            "git_commit": "abc1234", **({"environment": env} if env else {})}
    (run / "run.json").write_text(json.dumps(info))
    (run / "done.json").write_text(json.dumps({"selected_epoch": 2, "selected_by": "val segment type_av",
                                               "epochs_run": 3, "seconds": 12.5}))
    for split in splits:
        (run / split).mkdir()
        offset = 0.0 if split == "val" else 50.0
        (run / split / "metrics_by_gating.json").write_text(json.dumps(
            {"own": gating, "han": numbers(offset + 10 * seed), "ma": numbers(offset + 10 * seed + 0.5)}))
    return run


def test_one_line_per_run_split_and_gating(tmp_path):
    results = tmp_path / "results"
    for seed in (0, 1):
        write_run(results, "han", "HAN", seed)
    write_run(results, "ma", "MA", 0, splits=("test",), gating="ma", env=None)   # val not evaluated, old run.json
    (results / "runs" / "ma" / "seed1").mkdir(parents=True)                      # not trained: no done.json
    out = tmp_path / "results" / "runs.csv"
    assert main(["runs", "--results", str(results), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 2 * 2 * 2 + 1 * 2
    assert list(table.columns[:6]) == ["row", "slug", "seed", "split", "gating", "own_gating"]
    line = table.query("slug == 'han' and seed == 1 and split == 'test' and gating == 'ma'").iloc[0]
    assert line["segment_audio"] == 60.5 and line["event_event_av"] == 69.5     # 50 + 10 + 0.5 (+ 9)
    assert not line["own_gating"] and line["row"] == "HAN"
    assert (line["selected_epoch"], line["epochs"], line["train_seconds"]) == (2, 3, 12.5)
    assert (line["recipe"], line["lr"], line["batch"], line["losses"], line["precision"]) == ("han", 3e-4, 16, "cms",
                                                                                            "bf16")
    assert (line["env_torch"], line["env_device_name"], line["env_cpu_capability"], line["env_torch_threads"]) == (
        "2.13.0+cpu", "Some CPU (2 cores)", "AVX512", 1)
    assert json.loads(line["model"]) == {"backbone": "han", "head": "mmil"}
    ma = table[table["slug"] == "ma"]
    assert set(ma["split"]) == {"test"} and ma.query("gating == 'ma'")["own_gating"].item()
    assert ma["env_torch"].isna().all()          # recorded as missing, not invented
    han = table[table["slug"] == "han"]
    assert not han[runs.NUMBER_COLUMNS + ["selected_epoch", "env_torch", "git_commit"]].isna().any().any()


def test_parquet_beside_it_when_pyarrow_is_installed(tmp_path):
    pytest.importorskip("pyarrow")
    results = tmp_path / "results"
    write_run(results, "han", "HAN", 0)
    out = tmp_path / "runs.csv"
    assert main(["runs", "--results", str(results), "--out", str(out)]) == 0
    parquet, csv = pd.read_parquet(out.with_suffix(".parquet")), pd.read_csv(out)
    assert list(parquet.columns) == list(csv.columns) and len(parquet) == len(csv) == 4
    keys = ["row", "seed", "split", "gating", *runs.NUMBER_COLUMNS, "selected_epoch", "env_torch"]
    pd.testing.assert_frame_equal(parquet[keys], csv[keys], check_dtype=False)


def test_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    results = tmp_path / "results"
    out = tmp_path / "runs.csv"
    assert main(["runs", "--results", str(results), "--out", str(out)]) == 1
    assert "no trained run (done.json)" in capsys.readouterr().err
    run = write_run(results, "han", "HAN", 0, splits=())
    with pytest.raises(AvvpError, match="1 trained runs but none evaluated"):
        runs.frame(results)
    (run / "test").mkdir()
    (run / "test" / "metrics_by_gating.json").write_text("{not json")
    assert main(["runs", "--results", str(results), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "han/seed0/test/metrics_by_gating.json" in err
    assert main(["runs", "--results", str(results), "--out", str(tmp_path / "runs.txt")]) == 1
    assert not out.exists() and not out.with_suffix(".parquet").exists()


def test_the_default_runs_csv_has_one_complete_line_per_run_split_and_gating():
    """results/runs.csv as the default's Table 2 run wrote it (a fresh clone at d17ade1: 13 rows x 3 seeds, test
    split, both gatings), loaded as a user would: the layout docs/outputs.md#resultsrunscsv promises, no missing value
    where the run has one. A later change of runs.csv's columns must keep reading it (or say why not)."""
    table = pd.read_csv(Path(__file__).parent / "data" / "default_runs_d17ade1.csv")
    assert len(table) == 13 * 3 * 1 * 2 and not table.duplicated(["slug", "seed", "split", "gating"]).any()
    assert table.groupby("slug").size().eq(3 * 2).all() and set(table["gating"]) == {"han", "ma"}
    assert list(table.columns[:6]) == ["row", "slug", "seed", "split", "gating", "own_gating"]
    recorded = runs.NUMBER_COLUMNS + ["selected_epoch", "epochs_run", "train_seconds", "lr", "batch", "git_commit",
                                      *(f"env_{k}" for k in runs.ENVIRONMENT)]
    filled = table[[c for c in recorded if c not in ("env_cuda", "env_cudnn")]]    # None on a CPU build
    assert not filled.isna().any().any()
    assert table["own_gating"].sum() == 39 and set(table.query("row == 'MA'")["gating"][table["own_gating"]]) == {"ma"}
    assert table["segment_type_av"].between(0, 100).all()
