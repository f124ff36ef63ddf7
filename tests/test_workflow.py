"""The Snakemake workflow: what each target plans (dry runs), lint, config validation, resuming.

Snakemake runs as a subprocess of this Python (`python -m snakemake`) in a copy of the workflow in tmp, so the
repository's data/ and results/ are never touched. The expected job counts are worked out from
config/tables.yaml and config/variants.yaml (each table's distinct rows, which of them train on MA's refined
labels, which tables are profiled), so a row added to the YAML alone changes them with no test edit:

  per row and seed: train + evaluate (test split); per seed with any refined row: train of the row "MA step 1" +
  refine (a per-seed stage on its run); per seed with any `labels: jomold` row: train of the row "JoMoLD noise
  estimator" + noise_ratios (JoMoLD's stages 1-2); per run scored under CMPAE's gating with its tuned thresholds:
  thresholds (a `runs_of` row adds no run); per row of a table with `extra` costs (Table 4): profile; figures:
  timeline and tsne (MA, MA* + Ours), spread (every Table 2 row); diagnostics: one diagnose job over every Table 2
  row and seed, reading each seed's refine summary (the label quality of Table 2's label stage).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import bench_kill  # noqa: E402
from bench_kill import copy_workflow  # noqa: E402  (the workflow's files in a fresh folder)


def snakemake(workdir: Path, *args: str, targets: list[str] = (), config: list[str] = (), timeout: int = 120):
    """`python -m snakemake ARGS --config CONFIG -- TARGETS` in `workdir`; the completed process (text output)."""
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(workdir), "--snakefile",
           str(workdir / "Snakefile"), *args]
    if config:
        cmd += ["--config", *config]
    cmd += ["--", *targets]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def planned(workdir: Path, *targets: str, config: list[str] = ()) -> dict[str, int]:
    """The job counts of a dry run, rule -> count (the 'Job stats' table; 'total' included)."""
    proc = snakemake(workdir, "--dry-run", "--quiet", "rules", targets=targets, config=config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {"total": 0}
    stats = text[text.index("job "):]
    counts = {}
    for line in stats.splitlines()[2:]:
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf"))


@pytest.fixture(scope="module")
def llp_root(tmp_path_factory) -> Path:
    """A folder holding the five LLP annotation files (a dry run only needs them to exist)."""
    root = tmp_path_factory.mktemp("llp")
    for name in ["AVVP_train.csv", "AVVP_val_pd.csv", "AVVP_test_pd.csv", "AVVP_eval_audio.csv",
                 "AVVP_eval_visual.csv"]:
        (root / name).write_text("filename\tevent_labels\n")
    return root


TABLES = yaml.safe_load((REPO / "config" / "tables.yaml").read_text())["tables"]


def yaml_rows(target: str) -> tuple[int, int, int, int, int, int]:
    """(distinct runs, runs on refined labels, rows profiled, runs on jomold labels, runs with a threshold search,
    runs on VALOR's pseudo-labels)
    of a target, from the YAML. A `runs_of` row reads another row's runs: it adds no run of its own."""
    from avvp.registry import FIGURES

    rows = yaml.safe_load((REPO / "config" / "variants.yaml").read_text())["variants"]
    figures = [FIGURES.get(kind) for kind in FIGURES.names()]
    names = {"figures": [f.table for f in figures if f.table], "diagnostics": ["table2"],
             "all": list(TABLES)}.get(target, [Path(target).stem])
    chosen = {r["variant"] for t in names for r in TABLES[t]["rows"]}
    if target in ("figures", "all"):
        chosen |= {m for f in figures for m in f.methods}  # the timeline and t-SNE figures' two methods
    tables = TABLES
    profiled = {r["variant"] for t in names if tables[t].get("extra") for r in tables[t]["rows"]}
    runs = {rows[v].get("runs_of", v) for v in chosen}
    refined = sum(rows[v].get("labels", "weak") == "refined" for v in runs)
    denoised = sum(rows[v].get("labels", "weak") == "jomold" for v in runs)
    pseudo = sum(rows[v].get("labels", "weak") == "valor" for v in runs)
    # the gating's per-run file: rows gated cmpae (their runs), and every row of a table with `tune_thresholds`
    tuned = {rows[v].get("runs_of", v) for v in rows if rows[v].get("gating") == "cmpae"}
    tuned |= {rows[r["variant"]].get("runs_of", r["variant"]) for t in TABLES.values() if t.get("tune_thresholds")
              for r in t["rows"]}
    return len(runs), refined, len(profiled), denoised, len(runs & tuned), pseudo


def expected(target: str, seeds: int, synthetic: bool = True) -> dict[str, int]:
    """Job counts of a target for `seeds` seeds, from the YAML's rows (module docstring)."""
    n, refined, profiles, denoised, tuned, pseudo = yaml_rows(target)
    counts = {"pack": 1, "train": n * seeds, "evaluate": n * seeds}
    if tuned:
        counts["thresholds"] = tuned * seeds
    if synthetic:
        counts["synthesize"] = 1
    if refined or target in ("diagnostics", "all"):   # diagnose reads every seed's refine summary
        counts["refine"] = seeds
        counts["train"] += seeds                      # the row "MA step 1", whose run refine reads
    if denoised:   # JoMoLD's stages 1 and 2, per seed, for the rows on `labels: jomold`
        counts["noise_ratios"] = seeds
        counts["train"] += seeds                      # the row "JoMoLD noise estimator"
    if pseudo:     # VALOR's per-second pseudo-labels, per seed, from the packed data
        counts["valor_labels"] = seeds
    if profiles:
        counts["profile"] = profiles
    if target.startswith("results/") and target.endswith(".md"):
        counts.update(table=1, resolve_config=1)
    if target == "figures":
        counts.update(figure=3, figures=1)
    if target == "diagnostics":
        counts.update(diagnose=1, diagnostics=1)
    if target == "all":
        counts.update(table=len(TABLES), resolve_config=1, figure=3, diagnose=1, all=1)
    counts["total"] = sum(counts.values())
    return counts


TARGETS = [f"results/{table}.md" for table in TABLES] + ["figures", "diagnostics", "all"]


@pytest.mark.parametrize("target", TARGETS)
def test_dry_run_synthetic(wf, target):
    assert planned(wf, target, config=["seeds=[0]"]) == expected(target, seeds=1)


@pytest.mark.parametrize("target", TARGETS)
def test_dry_run_llp_skips_synthesize(wf, llp_root, target):
    config = [f"dataset={{kind: llp, path: {llp_root}}}", "seeds=[0]"]
    assert planned(wf, target, config=config) == expected(target, seeds=1, synthetic=False)


def test_default_config_plans_three_seeds_of_every_row(wf):
    # config/config.yaml as shipped: seeds [0, 1, 2], so every row three times and MA's refinement per seed.
    assert planned(wf) == expected("all", seeds=3)


def test_released_protocol_trains_seed_zero_only(wf):
    # The released code fixes every seed to 0, so more seeds would only repeat the same run
    # (docs/protocol.md#released-protocol).
    assert planned(wf, "results/table2.md", config=["protocol=released"]) == expected("results/table2.md", seeds=1)


def native_bf16() -> bool:
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


@pytest.mark.parametrize("given, device", [("auto", "cpu"), ("auto", "cuda"), ("fp32", "cpu"), ("bf16", "cpu")])
def test_precision_auto_is_bf16_only_where_it_is_native(wf, given, device):
    """`precision: auto` (the default) plans bf16 on a GPU or a CPU with AVX512-BF16 / AMX, fp32 on any other CPU
    (where bf16 is emulated, many times slower: an AVX2-only EPYC); fp32 and bf16 are kept as given."""
    proc = snakemake(wf, "--dry-run", "--printshellcmds", targets=["results/runs/han/seed0/done.json"],
                     config=[f"precision={given}", f"device={device}", "seeds=[0]"])
    assert proc.returncode == 0, proc.stderr
    want = given if given != "auto" else ("bf16" if device == "cuda" or native_bf16() else "fp32")
    assert "avvp train --variant HAN --seed 0" in proc.stdout and f"--precision {want} " in proc.stdout
    assert ("precision auto: fp32" in proc.stderr) == (given == "auto" and want == "fp32")


def test_commands_quote_row_names_and_pass_the_config(wf):
    proc = snakemake(wf, "--dry-run", "--printshellcmds",
                     targets=["results/runs/ma_star_ours/seed1/test/metrics.json"],
                     config=["epochs=4", "device=cuda", "precision=bf16", "threads=2", "seeds=[1]"])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    # The refined labels of the same seed: MA's step 1, a row, trains 12/40 of the override (at least 1 epoch),
    # and refine reads its run. CUDA jobs claim one of K slots per GPU (AVVP_GPU_SLOTS) and run the graphed step.
    assert ("AVVP_GPU_SLOTS=1 avvp train --variant 'MA step 1' --seed 1 --data data/packed/default-s0"
            " --out results/runs/ma_step_1/seed1  --epochs 1  --device cuda --precision bf16 --protocol default"
            " --variants-file config/variants.yaml --graphs on --threads 2") in out
    assert ("AVVP_GPU_SLOTS=1 avvp refine --run results/runs/ma_step_1/seed1 --data data/packed/default-s0 --seed 1"
            " --out results/refine/seed1 --device cuda --precision bf16 --threads 2") in out
    assert ("AVVP_GPU_SLOTS=1 avvp train --variant 'MA* + Ours' --seed 1 --data data/packed/default-s0"
            " --out results/runs/ma_star_ours/seed1 --refined results/refine/seed1/refined_labels.npz --epochs 4"
            " --lr-scale 4.0 --device cuda --precision bf16 --protocol default") in out
    assert "--variants-file config/variants.yaml --graphs on --threads 2" in out
    assert ("AVVP_GPU_SLOTS=1 avvp evaluate --run results/runs/ma_star_ours/seed1 --data data/packed/default-s0"
            " --split test") in out
    assert "gpu=1" in out                           # cuda jobs ask for a GPU


def test_learning_rate_scale_applies_to_its_recipe_only(wf):
    proc = snakemake(wf, "--dry-run", "--printshellcmds", targets=["results/table4.md"],
                     config=["seeds=[0]", "lr_scale={han: 2, ours: 1}"])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    han = [line for line in out.splitlines() if "avvp train --variant HAN " in line]
    cmco = [line for line in out.splitlines() if "avvp train --variant 'HAN + CM-Co'" in line]
    assert han and all("--lr-scale 2" in line for line in han)
    assert cmco and all("--lr-scale" not in line for line in cmco)


def test_figures_compare_ma_with_ours_on_the_first_seed(wf):
    proc = snakemake(wf, "--dry-run", "--printshellcmds", targets=["results/figures/timeline.png"],
                     config=["seeds=[2, 0]"])
    assert proc.returncode == 0, proc.stderr
    assert "--methods MA 'MA* + Ours' --seeds 2 --out results/figures/timeline.png" in proc.stdout


def test_lint_is_clean(wf):
    proc = snakemake(wf, "--lint")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Congratulations, your workflow is in a good condition!" in out, out
    assert "Lints for" not in out, out


SNAKEMAKE_INFO = ("Using workflow specific profile", "Config file config/config.yaml is extended")


@pytest.mark.parametrize("value, line", [
    ("seeds=[-1]", "config seeds[0]: -1 is less than the minimum of 0"),
    ("epochs=0", "config epochs: 0 is less than the minimum of 1"),
    ("device=gpu", "config device: 'gpu' is not one of ['cpu', 'cuda']"),
    ("precision=fp16", "config precision: 'fp16' is not one of ['auto', 'fp32', 'bf16']"),
    ("gpu_slots=-2", "config gpu_slots: -2 is less than the minimum of 0"),
    ("dataset={kind: llp}", "config dataset.path: None is not of type 'string' (kind llp needs the LLP root "
                            "folder: dataset={kind: llp, path: /data/LLP})"),
])
def test_bad_config_value_is_one_line_before_any_job(tmp_path, value, line):
    """A real run (not a dry run) stops while reading the config: one line, exit 1, nothing made."""
    wd = copy_workflow(tmp_path / "wf")
    proc = snakemake(wd, "--cores", "1", targets=["results/table2.md"], config=[value])
    said = [x for x in (proc.stdout + proc.stderr).splitlines() if not x.startswith(SNAKEMAKE_INFO)]
    assert proc.returncode == 1
    assert said == [f"Error: {line} [workflow/schemas/config.schema.yaml]"], said
    assert not (wd / "results").exists() and not (wd / "data").exists()   # Snakemake's own .snakemake/log aside


def validated(overrides: dict) -> dict:
    """config/config.yaml with `overrides` merged in, validated (and defaults filled) as the Snakefile does."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    return config


@pytest.mark.parametrize("overrides, message", [
    ({"seeds": []}, "should be non-empty"),
    ({"seeds": [0, 0]}, "has non-unique elements"),
    ({"dataset": {"kind": "llp"}}, "None is not of type 'string'"),          # real data needs its folder
    ({"epochs": 0}, "0 is less than the minimum of 1"),
    ({"dataset": {"preset": "huge"}}, "'huge' is not one of ['tiny', 'default', 'full']"),
    ({"annotation_version": "2021"}, "'2021' is not one of"),
    ({"slurm": {"gpus": 2}}, "Additional properties are not allowed ('gpus' was unexpected)"),
    ({"typo": 1}, "Additional properties are not allowed ('typo' was unexpected)"),
])
def test_schema_rejects_bad_values(overrides, message):
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError) as err:
        validated(overrides)
    assert message in str(err.value)


def test_schema_fills_defaults_and_accepts_the_shipped_config():
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert validated({}) == config                  # every key is written out in config/config.yaml
    assert validated({"annotation_version": 2020})["annotation_version"] == 2020
    from snakemake.utils import validate

    minimal = {"dataset": {"kind": "llp", "path": "/data/llp"}}
    validate(minimal, str(REPO / "workflow/schemas/config.schema.yaml"))
    assert minimal == {"dataset": {"kind": "llp", "path": "/data/llp", "preset": "default", "seed": 0},
                       "annotation_version": "auto", "seeds": [0, 1, 2], "epochs": None,
                       "lr_scale": {"han": 1.0, "ours": 1.0}, "plugins": [],
                       "variants_files": ["config/variants.yaml"], "tables_files": ["config/tables.yaml"],
                       "device": "cpu",
                       "precision": "fp32", "protocol": "default", "thresholds": "tuned", "pseudo_labels": None,
                       "threads": 1,
                       "gpu_slots": 1, "cuda_graphs": True, "tracking": "none",
                       "slurm": {"partition": None, "account": None, "gpus_per_job": 1}}


def _typo_in_tables(spec):
    spec["tables"]["table1"]["rows"].append({"variant": "HAN + Magic", "published": None, "base": None})


def _typo_in_variants(spec):
    spec["variants"]["MA"]["gating"] = "hann"


@pytest.mark.parametrize("sheet, typo, message", [
    ("tables", _typo_in_tables, "config/tables.yaml: table 'table1' row 9 ('HAN + Magic'): variant: unknown variant "
                                "'HAN + Magic' (not in config/variants.yaml)"),
    ("variants", _typo_in_variants, "config/variants.yaml: variant 'MA': gating: 'hann' is not one of "
                                    "['cmpae', 'han', 'ma'] (gatings)"),
])
def test_a_typo_in_a_sheet_stops_the_workflow_before_any_job(tmp_path, sheet, typo, message):
    """The workflow validates both sheets when it starts (avvp/sheets.py), as avvp does; one line says where."""
    wd = copy_workflow(tmp_path / "wf")
    spec = yaml.safe_load((wd / f"config/{sheet}.yaml").read_text())
    typo(spec)
    (wd / f"config/{sheet}.yaml").write_text(yaml.safe_dump(spec))
    proc = snakemake(wd, "--dry-run")
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (wd / "results").exists() and not (wd / "data").exists()


def test_interrupted_training_resumes_and_nothing_else_reruns(tmp_path):
    """The real synthesize -> pack -> train chain on the tiny preset, interrupted (Ctrl-C) during training and
    run again: the run resumes from its last.pt, no data job is redone, and then nothing is left to do."""
    wd = copy_workflow(tmp_path / "wf")
    tiny = ["dataset={preset: tiny}", "seeds=[0]", "epochs=12"]
    target = "results/runs/han/seed0/done.json"
    run = wd / "results/runs/han/seed0"
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--config", *tiny, "--", target]
    # Ctrl-C reaches every process of the terminal's group: Snakemake and the `avvp train` job.
    proc = subprocess.Popen(cmd, cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not ((run / "log.csv").exists() and len((run / "log.csv").read_text().splitlines()) > 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0, out
    assert (run / "last.pt").exists() and not (run / "done.json").exists(), out
    epochs_before = len((run / "log.csv").read_text().splitlines()) - 1
    assert 2 <= epochs_before < 12

    again = snakemake(wd, "--cores", "1", targets=[target], config=tiny)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert re.findall(r"^(?:local)?rule (\w+):", out, re.M) == ["train"], out      # the data jobs are not redone
    assert f"resuming HAN seed 0 after epoch {epochs_before}" in (wd / "results/logs/train/han/seed0.log").read_text()
    log = (run / "log.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in log] == list(range(1, 13))  # every epoch exactly once
    assert (run / "best.pt").exists()
    assert planned(wd, target, config=tiny) == {"total": 0}

    # Table 4 now needs its other rows' runs (HAN is done), every row's evaluation and profile, and the table;
    # its rows that are also in a `tune_thresholds` table (Table 5) get CMPAE's threshold search, HAN's included.
    rows, _, profiled, _, tuned, _ = yaml_rows("results/table4.md")
    plan = {"resolve_config": 1, "train": rows - 1, "evaluate": rows, "profile": profiled, "table": 1,
            **({"thresholds": tuned} if tuned else {})}
    assert planned(wd, "results/table4.md", config=tiny) == {**plan, "total": sum(plan.values())}

    # The packed tiny data says 'synthetic': asking for the 2020 annotations stops the workflow.
    bad = snakemake(wd, "--cores", "1", targets=["results/config.yaml"], config=tiny + ["annotation_version=2020"])
    assert bad.returncode != 0
    assert "annotation_version is 'synthetic' but the config asks for '2020'" in bad.stdout + bad.stderr
    ok = snakemake(wd, "--cores", "1", targets=["results/config.yaml"], config=tiny)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    resolved = yaml.safe_load((wd / "results/config.yaml").read_text())
    assert resolved["dataset"]["preset"] == "tiny" and resolved["epochs"] == 12 and resolved["seeds"] == [0]
    for log in ["synthesize/tiny-s0.log", "pack/tiny-s0.log", "train/han/seed0.log", "resolve_config.log"]:
        assert (wd / "results/logs" / log).exists(), log
    for bench in ["synthesize/tiny-s0.tsv", "pack/tiny-s0.tsv", "train/han/seed0.tsv"]:
        assert (wd / "results/benchmarks" / bench).exists(), bench


def test_llp_config_file_trains_the_papers_recipes_as_published(wf, llp_root):
    proc = snakemake(wf, "--dry-run", "--printshellcmds", "--configfile", str(wf / "config/llp.yaml"),
                     targets=["results/table2.md"], config=[f"dataset={{kind: llp, path: {llp_root}}}", "seeds=[0]"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    train = [line for line in (proc.stdout + proc.stderr).splitlines() if "avvp train --variant" in line]
    assert len(train) == yaml_rows("table2")[0] + 1      # + the row "MA step 1", whose run the refinement reads
    assert all("--precision fp32" in line and "--epochs" not in line and "--lr-scale" not in line for line in train)


def test_the_readme_real_llp_command_runs_as_written(wf, llp_root):
    # docs/real-llp.md's command, word for word (only the LLP path is ours): Snakemake's --config swallows every
    # word after it, so a target written after it fails with "Config entries have to be defined as name=value pairs".
    command = re.search(r"and run `(snakemake [^`]+)`", (REPO / "docs" / "real-llp.md").read_text()).group(1)
    args = shlex.split(command.replace("/data/LLP", str(llp_root)))
    proc = subprocess.run([sys.executable, "-m", *args, "--dry-run"], cwd=wf, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "avvp train --variant 'MA* + CM-Co'" in proc.stdout + proc.stderr


def run_tiny(wd: Path, target: str, *config: str, env: dict | None = None):
    """The real workflow on the tiny preset (1 seed, 1 epoch) up to `target`; the completed process."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--config", "dataset={preset: tiny}", "seeds=[0]",
           "epochs=1", *config, "--", target]
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})})


def test_a_table_added_to_tables_yaml_alone_is_planned_and_built(tmp_path):
    """A new table is YAML only: no list of tables exists outside config/tables.yaml (the rule `all`, the
    Snakefile's constraint on {table} and `avvp table --table` all derive from it)."""
    wd = copy_workflow(tmp_path / "wf")
    spec = yaml.safe_load((wd / "config/tables.yaml").read_text())
    spec["tables"]["table_new"] = {
        "title": "HAN's stacking, beyond the paper", "source": "No table", "columns": ["segment.audio", "event.audio"],
        "rows": [{"variant": "HAN", "base": None},
                 {"variant": "HAN 2 Layers", "base": "HAN", "published": {"segment": {"audio": 58.2}}}]}
    (wd / "config/tables.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    plan = planned(wd, "all", config=["seeds=[0]"])
    assert plan["table"] == len(TABLES) + 1
    proc = run_tiny(wd, "results/table_new.md")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (wd / "results/table_new.md").read_text()
    assert "# No table (table_new): HAN's stacking, beyond the paper" in text
    assert "| HAN 2 Layers" in text and "HAN 2 Layers vs HAN" in text
    # The paper line of a row with one published number: that number, and the other column blank.
    paper = next(line for line in text.splitlines() if "| paper " in line)
    assert [c.strip() for c in paper.strip("|").split("|")][2:] == ["58.2", "—"]


def test_a_table_and_runs_csv_in_one_command(tmp_path):
    """Issue 31, item 4: `snakemake results/<table>.md results/runs.csv` in a fresh folder: runs.csv waits for the
    runs the same command makes (before, it took only the runs that existed when the DAG was built, ran first and
    stopped: "no trained run"); alone, it still lists what exists."""
    wd = copy_workflow(tmp_path / "wf")
    spec = yaml.safe_load((wd / "config/tables.yaml").read_text())
    spec["tables"]["table_one"] = {"title": "HAN alone", "source": "No table", "columns": ["segment.audio"],
                                   "rows": [{"variant": "HAN", "base": None}]}
    (wd / "config/tables.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--config", "dataset={preset: tiny}", "seeds=[0]",
           "epochs=1", "--", "results/table_one.md", "results/runs.csv"]
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = pd.read_csv(wd / "results/runs.csv")
    assert set(runs["row"]) == {"HAN"} and set(runs["split"]) == {"val", "test"}
    assert planned(wd, "results/runs.csv", config=["dataset={preset: tiny}", "seeds=[0]", "epochs=1"]) == {"total": 0}


def test_a_plugin_method_with_a_stage_runs_end_to_end(tmp_path):
    """A method from outside avvp/ (tests/plugins/toy_method.py), with no edit of avvp/ or workflow/: a backbone;
    a per-seed stage `toy-teacher` that turns the trained run of the row "Toy teacher" into labels; a label source
    that trains on them with a per-batch rule (the teacher's labels annealed in). Its rows and table live in the
    user's sheets. The workflow imports the plugin, hands it to every job, makes its stage's rule from the
    registry, and plans, makes, trains, evaluates and tabulates it on tiny."""
    wd = copy_workflow(tmp_path / "wf")
    shutil.copytree(REPO / "tests/plugins", wd / "mine", ignore=shutil.ignore_patterns("__pycache__"))
    config = ["plugins=[toy_method]", "variants_files=[config/variants.yaml, mine/toy_variants.yaml]",
              "tables_files=[config/tables.yaml, mine/toy_tables.yaml]"]
    env = {"PYTHONPATH": os.pathsep.join([str(wd / "mine"), os.environ.get("PYTHONPATH", "")])}
    proc = run_tiny(wd, "results/toy_table.md", *config, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # The plugin's stage ran as a rule of its own, on the teacher's run, before the row that trains on its file.
    assert re.search(r"^(?:local)?rule toy_teacher:", out, re.M), out
    teacher = np.load(wd / "results/toy_teacher/seed0/teacher_labels.npz")
    weak = np.load(wd / "data/packed/tiny-s0/train/labels.npy")
    assert list(teacher["filenames"]) == list(np.load(wd / "data/packed/tiny-s0/train/filenames.npy"))
    assert (teacher["audio"] <= weak).all() and (teacher["visual"] <= weak).all()   # the weak labels, some removed
    assert (wd / "results/runs/toy_teacher/seed0/done.json").exists()
    run = json.loads((wd / "results/runs/toy/seed0/run.json").read_text())
    assert run["spec"] == {"backbone": "toy", "mix": 0.25, "head": "mmil", "dropout": 0.1}
    assert run["labels"] == "toy_teacher" and run["recipe"]["toy_anneal"] == {"epochs": 2}
    assert run["teacher"].endswith("results/toy_teacher/seed0/teacher_labels.npz") and run["inputs"]["teacher"]
    assert json.loads((wd / "results/runs/toy/seed0/test/metrics.json").read_text())["segment"]["audio"] >= 0
    text = (wd / "results/toy_table.md").read_text()
    assert "# Toy table (toy_table)" in text and "| Toy (plugin)" in text and "Toy (plugin) vs HAN" in text
    assert "modules (backbone han → toy;" in text and "labels (weak → toy_teacher)" in text
    # Without the plugin, its row is one line naming the sheet, the row and the key.
    bad = snakemake(wd, "--dry-run", config=config[1:])
    assert bad.returncode != 0
    assert "mine/toy_variants.yaml: " in bad.stdout + bad.stderr
    assert "'toy' is not one of" in bad.stdout + bad.stderr or "'toy_anneal'" in bad.stdout + bad.stderr


@pytest.fixture()
def toy_method(monkeypatch):
    """The plugin imported into this process, its registrations removed afterwards (the docs list the package's
    own names only)."""
    from avvp.registry import BACKBONES, LABEL_SOURCES, STAGES

    monkeypatch.syspath_prepend(str(REPO / "tests" / "plugins"))
    import toy_method

    yield toy_method
    for registry, name in ((BACKBONES, "toy"), (LABEL_SOURCES, "toy_teacher"), (STAGES, "toy-teacher")):
        registry.unregister(name)
    del sys.modules["toy_method"]


def test_the_plugins_per_batch_rule_anneals_in_its_teachers_labels(toy_method):
    """The toy rule by hand: the teacher's weight rises t / (epochs x iterations), capped at 1; inside the step a
    batch's targets are w x the teacher's + (1 - w) x the weak labels (the global target stays the weak ones)."""
    import torch

    from avvp.training import label_sources
    from avvp.training.losses import Batch

    rule = label_sources.per_batch("toy_teacher")
    w = rule.schedule(torch.ones(1, dtype=torch.float64), {"epochs": 2}, 4, 1)        # epoch 2 of 2, 4 batches
    assert w.squeeze(1).tolist() == [4 / 8, 5 / 8, 6 / 8, 7 / 8]
    assert rule.schedule(torch.ones(1, dtype=torch.float64), {"epochs": 2}, 4, 2).squeeze(1).tolist() == [1.0] * 4
    y, teacher = torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    batch = Batch(*(torch.zeros(1),) * 3, y=y, y_a=teacher, y_v=teacher, in_force=torch.tensor([0.25]))
    got = toy_method.anneal(None, None, batch, 0)
    assert got.y_a.tolist() == got.y_v.tolist() == [[1.0, 0.75, 0.0]] and torch.equal(got.y, y)


def test_killed_in_pack_train_and_evaluate_ends_with_the_uninterrupted_outputs(tmp_path):
    """bench/bench_kill.py on the tiny preset (2 epochs): Snakemake and its jobs SIGKILLed at a random moment of
    a pack job, then (the same command again) of a train job, then of an evaluate job, then the same command to
    its end: every evaluation output equals the uninterrupted run's, byte for byte, and nothing is left over
    (avvp temporaries, Snakemake's locks, incomplete jobs). Each round removes the locks the last kill left."""
    stages = ["pack", "train", "evaluate"]
    report = bench_kill.run("results/runs/han/seed0/test/metrics.json", stages, seed=0, cores=1, out=tmp_path,
                            config=bench_kill.TINY, say=lambda line: None, window=(0.05, 0.4))
    assert report["reference_rc"] == 0 and report["final_rc"] == 0, report
    assert [k["stage"] for k in report["kills"] if k["killed"] and k["in_stage"]] == stages, report["kills"]
    assert len(report["reference"]) == 4 and report["killed"] == report["reference"]
    assert report["left"] == {"temporaries": [], "snakemake_locks": 0, "incomplete_jobs": 0}
    for said in [k["said_on_start"] for k in report["kills"][1:]] + [report["final_said"]]:
        assert any("lock(s) of a killed run" in line and "removed" in line for line in said), said

    # A truncated evaluation output and a done.json that is not JSON: the same command removes them and makes
    # them again (train resumes from its last epoch, evaluate reruns) rather than stopping.
    killed = report["killed_dir"]
    run = killed / "results/runs/han/seed0"
    (run / "test/per_video.npz").write_bytes((run / "test/per_video.npz").read_bytes()[:100])
    (run / "done.json").write_text("{")
    cmd = bench_kill.command(killed, "results/runs/han/seed0/test/metrics.json", 1, bench_kill.TINY)
    assert bench_kill.finish(cmd, killed, tmp_path / "rebuild.log")[0] == 0, (tmp_path / "rebuild.log").read_text()
    said = bench_kill.recovery_lines(tmp_path / "rebuild.log")
    assert sum("unreadable" in line and "removed" in line for line in said) == 2, said
    assert bench_kill.outputs(killed) == report["reference"]
    assert (run / "done.json").exists() and json.loads((run / "done.json").read_text())["epochs_run"] == 2


def test_native_bf16_reads_the_cpu_flags(tmp_path):
    """avvp.machine.cpu_has_native_bf16 on hand-made cpuinfo files: the AVX512-BF16 or AMX-BF16 flag, nothing else."""
    from avvp.machine import cpu_has_native_bf16

    def cpu(flags: str) -> Path:
        f = tmp_path / f"cpuinfo{len(list(tmp_path.iterdir()))}"
        f.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        return f

    assert not cpu_has_native_bf16(cpu("fpu sse sse2 avx avx2 fma"))              # this stop's AVX2-only EPYC
    assert not cpu_has_native_bf16(cpu("avx2 avx512f avx512bw avx512vl"))          # AVX512 without its bf16
    assert cpu_has_native_bf16(cpu("avx2 avx512f avx512_bf16"))
    assert cpu_has_native_bf16(cpu("avx2 amx_bf16 amx_tile"))
    assert not cpu_has_native_bf16(tmp_path / "no_such_file")                        # not Linux
