"""config/tables.yaml (every published number) and `avvp table` on a hand-made results tree."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avvp import sheets, variants
from avvp.cli import main
from avvp.errors import AvvpError
from avvp.evaluation import metrics
from avvp.reporting import tables

TABLES_YAML = Path(__file__).resolve().parents[1] / "config" / "tables.yaml"
TEN = ["segment.audio", "event.audio", "segment.visual", "event.visual", "segment.audio_visual",
       "event.audio_visual", "segment.type_av", "event.type_av", "segment.event_av", "event.event_av"]
FIVE = ["segment.audio", "segment.visual", "segment.audio_visual", "segment.type_av", "segment.event_av"]


# ------------------------------------------------------------------------------------ config/tables.yaml

@pytest.fixture(scope="module")
def paper():
    return yaml.safe_load(TABLES_YAML.read_text())


def _rows(paper, table):
    """variant -> row, its published numbers as a list in the table's column order (None: not in the paper)."""
    columns = paper["tables"][table]["columns"]
    return {r["variant"]: {**r, "published": None if r.get("published") is None else
                           [sheets.published(r, c) for c in columns]} for r in paper["tables"][table]["rows"]}


def keyed(columns, values) -> dict:
    """Published numbers in column order -> the sheet's form, {level: {key: number}}."""
    out: dict = {}
    for column, value in zip(columns, values):
        level, key = column.split(".")
        out.setdefault(level, {})[key] = value
    return out


def test_every_published_number_is_there(paper):
    # The paper prints 8, 10, 10 and 4 rows of numbers in Tables 1-4; which rows they are is the YAML's to say.
    expected = {"table1": 8, "table2": 10, "table3": 10, "table4": 4}
    known = set(variants.names())
    for name, count in expected.items():
        spec = paper["tables"][name]
        published = [r["variant"] for r in spec["rows"] if r["published"] is not None]
        assert len(published) == len(set(published)) == count, name
        assert spec["columns"] == (FIVE if name == "table4" else TEN)
        for r in _rows(paper, name).values():
            assert r["variant"] in known and (r["base"] is None or r["base"] in known)
            if r["published"] is None:
                continue
            assert len(r["published"]) == (5 if name == "table4" else 10)
            assert all(isinstance(x, float) and 25 < x < 70 for x in r["published"])
            if name == "table4":
                assert isinstance(r["gflops"], float) and isinstance(r["params"], float)
    assert sum(len(r["published"]) for t in ["table1", "table2", "table3"]
               for r in _rows(paper, t).values() if r["published"]) == 10 * (8 + 10 + 10)


def test_spot_values_and_bases(paper):
    t1, t2, t3, t4 = (_rows(paper, f"table{i}") for i in range(1, 5))
    assert t1["MA* + Ours"]["published"][2] == 63.5          # segment visual
    assert t1["AVE"]["published"][:2] == [47.2, 40.4]
    assert t1["AVSDN"]["published"][5] == 26.5               # event audio-visual
    assert t2["MA + CM-Co"]["published"][0] == 61.1
    assert t2["HAN + CM-S"]["published"][9] == 47.5
    assert t3["MA* + V Only"]["published"] == [46.8, 34.4, 60.8, 57.0, 42.8, 31.1, 50.1, 40.9, 52.6, 40.4]
    assert t4["HAN 3 Layers"]["gflops"] == 7.97 and t4["HAN 3 Layers"]["params"] == 3.5
    assert t4["HAN"]["label"] == "HAN 1 Layer" and t4["HAN"]["gflops"] == 6.63
    assert t4["HAN + CM-Co"]["published"] == [59.7, 57.4, 51.9, 56.3, 57.4]
    # Rows shared by several tables carry the same numbers everywhere.
    assert t1["HAN"]["published"] == t2["HAN"]["published"] == t3["HAN"]["published"]
    assert [t1["HAN"]["published"][i] for i in (0, 2, 4, 6, 8)] == t4["HAN"]["published"]
    # Bases: the row each one extends.
    assert t1["AVSDN + Ours"]["base"] == "AVSDN" and t1["MA* + Ours"]["base"] == "MA*"
    assert t2["HAN + CM-S"]["base"] == "HAN" and t2["MA + CM-Co"]["base"] == "MA"
    assert t3["MA* + AV"]["base"] == "MA*" and t4["HAN 2 Layers"]["base"] == "HAN"
    assert all(t1[v]["base"] is None for v in ["AVE", "AVSDN", "HAN", "MA", "MA*"])
    control = t2["HAN (ours recipe)"]
    assert control["published"] is None and control["base"] == "HAN"


# ---------------------------------------------------------------------------------- a fake results tree

def _metrics(values: dict[str, float]) -> dict:
    out = {"segment": {}, "event": {}}
    for key, v in values.items():
        level, kind = key.split(".")
        out[level][kind] = v
    return out


N_VIDEOS = 40


def _per_video(variant: str, seed: int, numbers: dict[str, float]) -> np.ndarray:
    """(videos, 10) scores whose means are `numbers` / 100: half the videos 0.35 above, half below, in an
    order of their own per run and column, so paired differences of a few points are noise over videos."""
    rng = np.random.default_rng(zlib.crc32(f"{variant}/{seed}".encode()))
    out = np.full((N_VIDEOS, len(metrics.COLUMNS)), 0.5)
    signs = np.repeat([1.0, -1.0], N_VIDEOS // 2)
    for key, value in numbers.items():
        out[:, metrics.COLUMNS.index(key)] = value / 100 + 0.35 * rng.permutation(signs)
    return out


def _write_scores(run: Path, numbers: dict, by_gating: dict[str, np.ndarray], own: str = "han"):
    """What `avvp evaluate` writes: per_video.npz (both gatings), metrics_by_gating.json, metrics.json."""
    (run / "test").mkdir(parents=True, exist_ok=True)
    files = np.array([f"v{i:03d}" for i in range(next(iter(by_gating.values())).shape[0])])
    np.savez(run / "test" / "per_video.npz", filenames=files, columns=np.array(metrics.COLUMNS),
             own_gating=np.array(own), **by_gating)
    per_gating = {g: _metrics({c: 100 * x.mean(0)[i] for i, c in enumerate(metrics.COLUMNS) if c in numbers})
                  for g, x in by_gating.items()}
    (run / "test" / "metrics_by_gating.json").write_text(json.dumps({"own": own, **per_gating}))
    (run / "test" / "metrics.json").write_text(json.dumps(_metrics(numbers)))


def _write_run(results: Path, variant: str, seed: int, numbers: dict[str, float], epochs: int = 5,
               spec: dict | None = None):
    run = results / "runs" / variants.slug(variant) / f"seed{seed}"
    videos = _per_video(variant, seed, numbers)
    _write_scores(run, numbers, {"han": videos, "ma": videos})
    (run / "run.json").write_text(json.dumps({
        "variant": variant, "slug": variants.slug(variant), "seed": seed, "protocol": "default",
        "epochs": epochs, "device": "cpu", "precision": "fp32", "data": "nowhere",
        "data_manifest_sha256": "feed", "git_commit": "abc1234", **({"spec": spec} if spec else {})}))


# Per seed, HAN's numbers are 50, 52, 54 plus a per-column offset; the other rows add chosen differences.
HAN_SEEDS = [50.0, 52.0, 54.0]
DIFFS = {
    "HAN + CM-Co": [2.0, 2.5, 1.5],     # consistent gain: t = 2 / (0.5/sqrt 3) = 6.93, p = 0.0202 -> †
    "HAN + CM-S": [3.0, -3.0, 0.5],     # inconsistent: not significant
    "HAN + Ours": [1.0, 1.0, 1.0],      # constant difference: the t-test is undefined -> n/a
}


def _fake_tree(tmp_path: Path, synthetic: bool = True, table4: bool = False):
    results = tmp_path / "results"
    columns = FIVE if table4 else TEN
    for seed, han in enumerate(HAN_SEEDS):
        base = {key: han + 0.1 * j for j, key in enumerate(columns)}
        _write_run(results, "HAN", seed, base)
        for variant, diffs in DIFFS.items():
            _write_run(results, variant, seed, {k: v + diffs[seed] for k, v in base.items()})
    rows = [{"variant": "HAN", "published": keyed(columns, [60.1 + 0.1 * j for j in range(len(columns))]),
             "base": None}]
    rows += [{"variant": v, "published": keyed(columns, [55.0] * len(columns)), "base": "HAN"} for v in DIFFS]
    rows.append({"variant": "HAN (ours recipe)", "published": None, "base": "HAN"})
    for seed in range(3):
        _write_run(results, "HAN (ours recipe)", seed, {k: 40.0 + seed for k in columns})
    spec = {"title": "A test table", "source": "Table 9", "columns": columns, "rows": rows}
    if table4:
        spec["extra"] = ["gflops", "params"]
        rows[0].update(label="HAN 1 Layer", gflops=6.63, params=2.4)
        for r in rows[1:]:
            r.update(gflops=7.0, params=3.0)
        (results / "profile").mkdir(parents=True)
        for r in rows:
            (results / "profile" / f"{variants.slug(r['variant'])}.json").write_text(json.dumps({
                "variant": r["variant"], "batch": 64, "paper_macs": 6.63e9, "paper_params": 2.47e6,
                "true_flops": 1.5e10, "true_params": 2.6e6}))
    name = "table4" if table4 else "table2"
    tables_file = tmp_path / "tables.yaml"
    tables_file.write_text(yaml.safe_dump({"source": "The paper", "tables": {name: spec}}))
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "manifest.json").write_text(json.dumps({
        "format": 1, "annotation_version": "synthetic" if synthetic else "2020",
        "hashes": {"AVVP_eval_audio.csv": "a" * 64}, "splits": {"train": 10, "val": 5, "test": 5},
        "synthetic": {"preset": "tiny", "seed": 7} if synthetic else None}))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"kind": "synthetic" if synthetic else "llp", "preset": "tiny", "seed": 7,
                    "path": None if synthetic else "/data/LLP"},
        "seeds": [0, 1, 2], "epochs": None, "protocol": "default"}))
    return {"results": results, "tables": tables_file, "config": config, "packed": packed, "name": name}


def _cli(tree, tmp_path, *extra) -> tuple[str, pd.DataFrame]:
    out = tmp_path / "out" / f"{tree['name']}.md"
    rc = main(["table", "--table", tree["name"], "--results", str(tree["results"]), "--config",
               str(tree["config"]), "--tables", str(tree["tables"]), "--data", str(tree["packed"]),
               "--out", str(out), *extra])
    assert rc == 0
    return out.read_text(), pd.read_csv(out.with_suffix(".csv"), keep_default_na=False)


def _md_row(text: str, method: str, what: str) -> list[str]:
    """The cells of one markdown line (method name or '' for the paper/difference lines)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == method:
            for follow in lines[i:i + 3]:
                cells = [c.strip() for c in follow.strip("|").split("|")]
                if cells[1].startswith(what):
                    return cells
    raise AssertionError(f"no line {method!r} / {what!r}")


def test_means_stds_differences(tmp_path):
    tree = _fake_tree(tmp_path)
    text, csv = _cli(tree, tmp_path)
    ours = _md_row(text, "HAN", "ours")
    assert ours[1] == "ours (n=3)"
    # Audio Seg.: 50, 52, 54 -> mean 52.0, sample std 2.0; Event@AV Event: +0.9 each.
    assert ours[2] == "52.0 ± 2.0" and ours[11] == "52.9 ± 2.0"
    assert _md_row(text, "HAN", "paper")[2] == "60.1"
    assert _md_row(text, "HAN", "ours - paper")[2] == "-8.1"       # 52.0 - 60.1
    assert _md_row(text, "HAN + CM-Co", "ours - paper")[2] == "-1.0"  # 54.0 - 55.0
    row = csv[(csv.variant == "HAN + CM-S") & (csv.metric == "segment.visual")].iloc[0]
    # 50.2 + 3, 52.2 - 3, 54.2 + 0.5: mean 52.3667, sample variance (0.833² + 3.167² + 2.333²) / 2 = 8.0833.
    assert row["values"] == "53.2000 49.2000 54.7000"
    assert math.isclose(float(row["mean"]), 157.1 / 3, abs_tol=1e-9)
    assert math.isclose(float(row["std"]), math.sqrt(8.08333333), abs_tol=1e-6)
    assert math.isclose(float(row["diff"]), 157.1 / 3 - 55.0, abs_tol=1e-9)
    assert list(csv.columns[:6]) == ["table", "variant", "label", "base", "metric", "column"]
    assert len(csv) == 5 * 10
    # The control row is there, marked as not in the paper, with no paper line.
    # 40, 41, 42 against HAN's 50, 52, 54: differences -10, -11, -12, t = -19.1, p = 0.0027 -> ‡.
    # Over videos (40, each 35 points off its run's mean) -11 points is also beyond chance: * (p < 0.05).
    assert _md_row(text, "HAN (ours recipe)", "ours")[2] == "41.0 ± 1.0‡*"
    assert "Not in the paper (controls): HAN (ours recipe)" in text
    assert csv[csv.variant == "HAN (ours recipe)"]["published"].eq("").all()


def test_paired_significance_marks(tmp_path):
    text, csv = _cli(_fake_tree(tmp_path), tmp_path)
    # 52.0, 54.5, 55.5: mean 54.0, sample std sqrt((4 + 0.25 + 2.25) / 2) = 1.80; consistently above HAN.
    assert _md_row(text, "HAN + CM-Co", "ours")[2] == "54.0 ± 1.8†"
    assert "†" not in "".join(_md_row(text, "HAN + CM-S", "ours")) + "".join(_md_row(text, "HAN + Ours", "ours"))
    assert "†" not in "".join(_md_row(text, "HAN", "ours"))
    p = csv[(csv.variant == "HAN + CM-Co") & (csv.metric == "segment.audio")]["p_vs_base"].iloc[0]
    t = 2.0 / (0.5 / math.sqrt(3))
    assert math.isclose(float(p), 1 - t / math.sqrt(t * t + 2), rel_tol=1e-6)   # t-distribution, 2 d.o.f.
    assert csv[csv.variant == "HAN + Ours"]["p_vs_base"].eq("n/a").all()
    assert csv[csv.variant == "HAN"]["p_vs_base"].eq("").all()
    assert "† p < 0.05" in text and "HAN + CM-Co vs HAN" in text


def test_single_seed_has_no_test_and_no_std(tmp_path):
    text, csv = _cli(_fake_tree(tmp_path), tmp_path, "--seeds", "1")
    assert _md_row(text, "HAN + CM-Co", "ours")[1:3] == ["ours (n=1)", "54.5"]
    assert csv[csv.base == "HAN"]["p_vs_base"].eq("n/a").all()


def test_header_synthetic(tmp_path):
    text, _ = _cli(_fake_tree(tmp_path), tmp_path)
    lines = text.splitlines()
    assert "NOT comparable with the paper" in lines[0]
    for needle in ["Dataset: synthetic (preset `tiny`, generator seed 7)", "Annotation version: synthetic",
                   "a" * 64, "Protocol: config `default`; runs: default (all rows)", "Seeds: 0, 1, 2",
                   "Epochs: config each recipe's own; runs: 5 (all rows)", "HAN stacking", "git commit ",
                   "runs trained at abc1234"]:
        assert needle in text, needle


def test_header_real_data(tmp_path):
    text, _ = _cli(_fake_tree(tmp_path, synthetic=False), tmp_path)
    assert "NOT comparable" not in text
    assert text.startswith("# Table 9 (table2): A test table")
    assert "Dataset: real LLP (`/data/LLP`)" in text and "Annotation version: 2020" in text


def test_table4_costs(tmp_path):
    text, csv = _cli(_fake_tree(tmp_path, table4=True), tmp_path)
    header = _md_row(text, "Method", "")
    assert header[2:] == ["Audio Seg.", "Visual Seg.", "Audio-visual Seg.", "Type@AV Seg.", "Event@AV Seg.",
                          "GFLOPs (paper conv.)", "Params M (paper conv.)", "GFLOPs (true, 2xMAC)", "Params M (true)"]
    assert _md_row(text, "HAN 1 Layer", "ours")[7:] == ["6.63", "2.47", "15.00", "2.60"]
    assert _md_row(text, "HAN 1 Layer", "paper")[7:9] == ["6.63", "2.40"]
    assert _md_row(text, "HAN 1 Layer", "ours - paper")[7:9] == ["+0.00", "+0.07"]
    # No row of this fixture stacks HAN layers, so the header says so rather than naming a stacking.
    assert "single layer only (no stacked-HAN rows in this table)" in text
    row = csv[(csv.variant == "HAN + CM-Co") & (csv.metric == "gflops_paper")].iloc[0]
    assert math.isclose(float(row["mean"]), 6.63) and math.isclose(float(row["diff"]), 6.63 - 7.0)


def test_table4_stacking_is_stated(tmp_path):
    tree = _fake_tree(tmp_path, table4=True)
    spec = yaml.safe_load(tree["tables"].read_text())
    spec["tables"]["table4"]["rows"].append({"variant": "HAN 3 Layers", "published": keyed(FIVE, [50.0] * 5),
                                             "base": "HAN", "gflops": 7.97, "params": 3.5})
    tree["tables"].write_text(yaml.safe_dump(spec))
    for seed in range(3):
        _write_run(tree["results"], "HAN 3 Layers", seed, {k: 50.0 for k in FIVE})
    (tree["results"] / "profile" / "han_3_layers.json").write_text(json.dumps(
        {"paper_macs": 7.97e9, "paper_params": 3.5e6, "true_flops": 2e10, "true_params": 3.6e6}))
    text, _ = _cli(tree, tmp_path)
    assert "HAN 3 Layers: released (every layer reads the original inputs" in text
    # What the runs say they trained (run.json spec) wins over config/variants.yaml.
    for seed in range(3):
        _write_run(tree["results"], "HAN 3 Layers", seed, {k: 50.0 for k in FIVE},
                   spec={"backbone": "han", "layers": 3, "stacking": "chained"})
    text, _ = _cli(tree, tmp_path)
    assert "HAN 3 Layers: chained (each layer reads the previous one's output)" in text


def test_missing_metrics_names_the_file_and_command(tmp_path, capsys):
    tree = _fake_tree(tmp_path)
    missing = tree["results"] / "runs" / "han_cm_s" / "seed2" / "test" / "metrics.json"
    missing.unlink()
    with pytest.raises(AvvpError, match=r"han_cm_s/seed2/test/metrics.json: missing .*avvp evaluate"):
        tables.build(tree["name"], tree["results"], tree["config"], tree["tables"], data=str(tree["packed"]))
    out = tmp_path / "out" / "t.md"
    assert main(["table", "--table", "table2", "--results", str(tree["results"]), "--config",
                 str(tree["config"]), "--tables", str(tree["tables"]), "--out", str(out)]) == 1
    assert "metrics.json" in capsys.readouterr().err and not out.exists()


def test_missing_profile_and_bad_tables(tmp_path):
    tree = _fake_tree(tmp_path, table4=True)
    (tree["results"] / "profile" / "han_cm_co.json").unlink()
    with pytest.raises(AvvpError, match=r"profile/han_cm_co.json: missing .*avvp profile"):
        tables.build("table4", tree["results"], tree["config"], tree["tables"])
    spec = yaml.safe_load(tree["tables"].read_text())
    spec["tables"]["table4"]["rows"][1]["variant"] = "HAN + Magic"
    tree["tables"].write_text(yaml.safe_dump(spec))
    with pytest.raises(AvvpError, match="unknown variant 'HAN \\+ Magic'"):
        tables.build("table4", tree["results"], tree["config"], tree["tables"])


def test_paired_p_rules():
    import numpy as np
    assert tables.paired_ps(np.array([[1.0]]), np.array([[0.0]])) == [None]
    assert tables.paired_ps(np.array([[2.0], [3.0]]), np.array([[1.0], [2.0]])) == [None]
    assert tables.mark(0.004) == "‡" and tables.mark(0.03) == "†" and tables.mark(0.2) == "" and tables.mark(None) == ""


# ------------------------------------------------------------------------------------------ environment

ENV = {"python": "3.11.7", "torch": "2.13.0+cpu", "cuda": None, "cudnn": None, "device_name": "Some CPU (2 cores)",
       "cpu_capability": "AVX512", "torch_threads": 1, "deterministic": False}


def _set_environment(results: Path, env: dict | None, pattern: str = "runs/*/seed*/run.json") -> None:
    for path in results.glob(pattern):
        info = json.loads(path.read_text())
        info["environment"] = env
        path.write_text(json.dumps(info))


def test_header_names_the_environment_and_warns_when_a_comparison_mixes_two(tmp_path):
    tree = _fake_tree(tmp_path)
    _set_environment(tree["results"], ENV)
    text, _ = _cli(tree, tmp_path)
    assert ("- Environment: python 3.11.7, torch 2.13.0+cpu, CUDA none, cuDNN none, Some CPU (2 cores), "
            "CPU kernels AVX512, 1 torch thread(s), deterministic kernels off (all runs)") in text.splitlines()
    assert "WARNING" not in text
    # One seed of HAN + CM-S on another PyTorch: its comparison with HAN mixes two environments.
    _set_environment(tree["results"], {**ENV, "torch": "2.5.1+cu121"}, "runs/han_cm_s/seed1/run.json")
    text, _ = _cli(tree, tmp_path, "--html", str(tmp_path / "out" / "table2.html"))
    lines = text.splitlines()
    assert "- Environments: 2 different ones among the runs" in lines
    e2 = next(line for line in lines if line.startswith("  - E2: "))
    assert "torch 2.5.1+cu121" in e2 and e2.endswith(": HAN + CM-S (1/3 runs)")
    warnings = [line for line in lines if "WARNING" in line]
    assert warnings == ["- WARNING: HAN + CM-S vs HAN: their runs were trained in 2 different environments "
                        "(torch 2.13.0+cpu / 2.5.1+cu121); the difference mixes the method with the environment"]
    page = (tmp_path / "out" / "table2.html").read_text()
    assert '<table class="dataframe avvp">' in page and "<td>HAN + CM-S</td>" in page
    assert '<li class="warning">WARNING: HAN + CM-S vs HAN' in page


def test_the_same_cpu_with_other_kernels_is_another_environment(tmp_path):
    # fp32 numbers differ between an AVX2 and an AVX512 machine (same code, same data): a comparison across them
    # says so, even when the CPUs' names agree.
    tree = _fake_tree(tmp_path)
    _set_environment(tree["results"], ENV)
    _set_environment(tree["results"], {**ENV, "cpu_capability": "AVX2"}, "runs/han_cm_s/seed1/run.json")
    text, _ = _cli(tree, tmp_path)
    assert [line for line in text.splitlines() if "WARNING" in line] == [
        "- WARNING: HAN + CM-S vs HAN: their runs were trained in 2 different environments "
        "(CPU kernels AVX2 / AVX512); the difference mixes the method with the environment"]


def test_runs_without_a_recorded_environment_say_so(tmp_path):
    tree = _fake_tree(tmp_path)
    text, _ = _cli(tree, tmp_path)
    assert f"- Environment: {tables.NO_ENV} (all runs)" in text.splitlines()
