"""The synthetic data is pinned: the presets' hashes, the generator's code and version, the README's header, the
environment lock, and the workflow's rerun when the generator changes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from conftest import synth_llp
from packaging.version import Version

from avvp import cli
from avvp.data import pins, repin, synth
from avvp.errors import AvvpError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_kill import copy_workflow  # noqa: E402


def pinned(preset: str) -> dict:
    return pins.load()["presets"][preset]


def test_tiny_is_the_pinned_data(tiny_llp, packed_tiny):
    got = pins.data_hashes(tiny_llp)
    assert got["files"] == pinned("tiny")["files"]
    assert got["features"] == pinned("tiny")["features"]
    manifest = hashlib.sha256((packed_tiny / "manifest.json").read_bytes()).hexdigest()
    assert manifest == pinned("tiny")["packed_manifest_sha256"]


def test_default_is_the_pinned_data(tmp_path):
    """2,500 videos, 1.7 GB: about a minute here."""
    got = pins.data_hashes(synth_llp(tmp_path / "default", preset="default"))
    assert got == {k: pinned("default")[k] for k in ("files", "features")}


@pytest.mark.parametrize("coretype", ["Haswell", "SkylakeX"])
def test_the_data_do_not_depend_on_the_blas_kernels(tmp_path, coretype):
    """OpenBLAS picks its kernels by CPU (Haswell's on AMD Zen and AVX2 machines, SkylakeX's on AVX512 Intel), and
    they round matrix products and least squares differently in the last bits: the generator must use neither, or
    the pinned data hold on one kind of CPU only (generator version 1 did: label sets from NNLS, features from a
    matmul). OPENBLAS_CORETYPE forces the kernels; a machine without AVX512 runs SkylakeX's as Haswell's."""
    code = ("import sys, pathlib; from avvp.data import synth, pins; out = pathlib.Path(sys.argv[1]); "
            "synth.generate(out, 'tiny', 0, progress=False); print(pins.check_written(out, 'tiny', 0) or 'pinned')")
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "tiny")], env=env, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "pinned", done.stdout


def test_every_preset_is_pinned_at_the_current_version():
    p = pins.load()
    assert set(p["presets"]) == {"tiny", "default", "full"} and p["seed"] == 0
    assert p["history"][str(p["generator_version"])] == p["code_sha256"]
    for entry in p["presets"].values():
        assert set(entry["files"]) == set(pins.ROOT_FILES) and set(entry["features"]) == {"audio", "visual", "motion"}


def test_the_pins_describe_this_generator():
    """Fails when synth.py (or its statistics) changed and GENERATOR_VERSION was not bumped with new pins."""
    assert pins.code_problem(pins.load(), synth.GENERATOR_VERSION, pins.generator_code_hash()) is None


def test_a_code_change_without_a_version_bump_is_caught():
    source = (REPO / "avvp/data/synth.py").read_text()
    now = pins.generator_code_hash(source)
    p = {"generator_version": 1, "code_sha256": now}
    changed = source.replace('"snr": 8.0,', '"snr": 8.5,')
    assert changed != source and pins.generator_code_hash(changed) != now
    problem = pins.code_problem(p, 1, pins.generator_code_hash(changed))
    assert "code changed" in problem and "bump synth.GENERATOR_VERSION" in problem
    assert "rewrite the pins" in pins.code_problem(p, 2, pins.generator_code_hash(changed))
    # Comments, blank lines and docstrings are not the generator.
    edited = source.replace("# Related classes share", "#   Related classes share").replace(
        '"""Distinct real-looking filenames', '"""Distinct, real-looking filenames') + "\n\n# the end\n"
    assert edited != source and pins.generator_code_hash(edited) == now


def test_write_refuses_new_code_under_a_pinned_version(tmp_path):
    path = tmp_path / "pins.json"
    path.write_text(json.dumps({"history": {str(synth.GENERATOR_VERSION): "0" * 64}}))
    with pytest.raises(AvvpError, match="is pinned with other code .*bump synth.GENERATOR_VERSION"):
        repin.write(path, ("tiny",))
    assert json.loads(path.read_text()) == {"history": {str(synth.GENERATOR_VERSION): "0" * 64}}


def test_write_pins_what_synth_writes(tmp_path):
    path = tmp_path / "pins.json"
    shutil.copy(REPO / "avvp/resources/synth_pins.json", path)
    written = repin.write(path, ("tiny",))
    assert written["presets"] == pins.load()["presets"] and json.loads(path.read_text()) == written


def said(capsys) -> list[str]:
    """What synth said on stderr, without its progress bar."""
    return [line for line in re.split(r"[\r\n]", capsys.readouterr().err) if line and not line.startswith("synth ")]


def test_synth_is_silent_on_pinned_data_and_says_one_line_when_it_differs(tmp_path, capsys, monkeypatch):
    synth_llp(tmp_path / "a")
    assert said(capsys) == []
    real = pins.load()
    bad = json.loads(json.dumps(real))
    bad["presets"]["tiny"]["files"]["AVVP_eval_audio.csv"] = "0" * 64
    bad["presets"]["tiny"]["features"]["visual"] = "0" * 64
    monkeypatch.setattr(pins, "load", lambda: bad)
    synth_llp(tmp_path / "b")
    err = said(capsys)
    assert len(err) == 1 and err[0].startswith(f"avvp synth: warning: {tmp_path / 'b'}: differs from the pins")
    assert "AVVP_eval_audio.csv, feats/res152" in err[0] and "AVVP_train.csv" not in err[0]
    bumped = dict(real, generator_version=real["generator_version"] - 1)
    monkeypatch.setattr(pins, "load", lambda: bumped)
    synth_llp(tmp_path / "c")
    err = said(capsys)
    assert len(err) == 1 and f"no pins for generator version {synth.GENERATOR_VERSION}" in err[0]
    assert cli.main(["synth", "--preset", "tiny", "--seed", "3", "--out", str(tmp_path / "d")]) == 0
    assert said(capsys) == []                     # seed 3 is not pinned


# ------------------------------------------------------------------------------------------ README
SAMPLE_PAGE = REPO / "docs" / "results" / "table2.md"   # the README's sample Table 2 (the README shows an excerpt)


def readme_sample() -> str:
    """The sample Table 2 page, docs/results/table2.md, from its sample section on."""
    text = SAMPLE_PAGE.read_text()
    return text[text.index("## Sample: Table 2"):]


def readme_sample_header() -> dict[str, str]:
    sample = readme_sample()
    found = {
        "preset": re.search(r"^- Dataset: synthetic \(preset `(\w+)`, generator seed (\d+)\)$", sample, re.M),
        "audio": re.search(r"^- Annotation version: synthetic \(AVVP_eval_audio\.csv sha256 `([0-9a-f]{64})`\)$",
                           sample, re.M),
        "manifest": re.search(r"^- Packed data: `data/packed/(\w+)-s(\d+)` \(manifest\.json sha256 `([0-9a-f]{16})`\)$",
                              sample, re.M),
    }
    assert all(found.values()), {k: bool(v) for k, v in found.items()}
    return found


SAMPLE_VERSION = re.compile(r"^Generator version of this sample: (\d+)(.*)$", re.M)


def test_readme_sample_header_is_the_pinned_data():
    """The sample's header names the pinned data of the current generator; a sample made with an older generator
    says so in its `Generator version of this sample:` line (with the words "not the current pins"), and then must
    not carry the current pins' hashes either (it cannot pass for the current data)."""
    found = readme_sample_header()
    declared = SAMPLE_VERSION.search(readme_sample())
    assert declared, "docs/results/table2.md's sample names the generator version it was made with"
    version = int(declared.group(1))
    assert version <= synth.GENERATOR_VERSION
    preset, seed = found["preset"].groups()
    assert int(seed) == pins.load()["seed"] and found["manifest"].groups()[:2] == (preset, seed)
    entry = pinned(preset)
    current = (found["audio"].group(1) == entry["files"]["AVVP_eval_audio.csv"],
               found["manifest"].group(3) == entry["packed_manifest_sha256"][:16])
    if version == synth.GENERATOR_VERSION:
        assert current == (True, True)
    else:
        assert "not the current pins" in declared.group(2) and current == (False, False)


SAMPLE_CSV = REPO / "tests" / "data" / "sample_table2.csv"   # the sample run's results/table2.csv, as written


def ours_cells(page: str) -> dict[str, dict[str, str]]:
    """The "ours (n=...)" cells of the markdown table in `page`: method -> column -> cell, as printed."""
    lines = [line for line in page.splitlines() if line.startswith("| ")]
    columns = [c.strip() for c in lines[0].split("|")[3:-1]]
    shown = {}
    for line in lines:
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if cells[1].startswith("ours (n="):
            shown[cells[0]] = dict(zip(columns, cells[2:]))
    return shown


def csv_cells(path: Path) -> dict[str, dict[str, str]]:
    """What a table's CSV says each "ours" cell prints: mean ± std with the two tests' marks."""
    import csv

    expected = {}
    for r in csv.DictReader(path.open()):
        cell = f"{float(r['mean']):.1f} ± {float(r['std']):.1f}{r['mark']}{r['boot_mark']}"
        expected.setdefault(r["label"], {})[r["column"]] = cell
    return expected


def test_readme_sample_table_is_the_stored_csv():
    """Every "ours" cell of the sample Table 2 (docs/results/table2.md) is the stored CSV's mean ± std with its two
    tests' marks, and the page names the CSV's sha256: the sample cannot be edited by hand, and a second clone's
    results/table2.csv can be compared with it byte for byte (`cmp results/table2.csv tests/data/sample_table2.csv`)."""
    sample = readme_sample()
    digest = hashlib.sha256(SAMPLE_CSV.read_bytes()).hexdigest()
    assert f"`{digest[:16]}`" in sample
    assert ours_cells(sample) == csv_cells(SAMPLE_CSV)


VALOR_PAGE, VALOR_CSV = REPO / "docs" / "results" / "valor.md", REPO / "tests" / "data" / "valor_default.csv"


def test_valor_results_page_is_the_stored_csv():
    """docs/results/valor.md's table is its run's results/valor.csv (kept as tests/data/valor_default.csv, named by
    its sha256 on the page), cell for cell, and the reading's VALOR and HAN numbers are that CSV's."""
    page = VALOR_PAGE.read_text()
    assert f"`{hashlib.sha256(VALOR_CSV.read_bytes()).hexdigest()[:16]}`" in page
    expected = csv_cells(VALOR_CSV)
    assert ours_cells(page) == expected
    valor, han = expected["VALOR"]["Type@AV Seg."], expected["HAN"]["Type@AV Seg."]
    assert f"{valor.rstrip('†‡*')} vs {han}" in page


# ------------------------------------------------------------------------------------------ the lock
def constraints() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            out[name.lower().replace("_", "-")] = version
    return out


def test_constraints_pin_every_installed_dependency_exactly():
    lock = constraints()
    assert lock["torch"] == "2.13.0" and "avvp" not in lock
    for name, version in lock.items():          # the public version: torch's local label (+cpu) aside
        # metadata.version: the first on sys.path (setuptools, once imported, appends its _vendor folder with
        # its own newer packaging and others; iterating every distribution would find those last)
        assert Version(metadata.version(name)).public == Version(version).public, name
    required = {re.split(r"[<>=!\[ ;]", r)[0].lower() for r in metadata.requires("avvp") if "extra ==" not in r}
    assert required <= set(lock)


def test_environment_yml_states_the_locked_versions():
    lock = constraints()
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda_names = {"pytorch": "torch"}
    listed = [d for d in env["dependencies"] if isinstance(d, str) and d not in ("pip",)]
    listed += [d for d in next(d["pip"] for d in env["dependencies"] if isinstance(d, dict)) if d != "-e ."]
    for dep in listed:
        name, _, version = dep.partition("==") if "==" in dep else dep.partition("=")
        name = conda_names.get(name, name)
        if name == "python":
            assert version == ".".join(map(str, sys.version_info[:2])), dep
            continue
        assert lock.get(name) == version, dep


# ------------------------------------------------------------------------------------------ workflow
def snakemake(wd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--config", "dataset={preset: tiny}", *args,
           "--", "data/packed/tiny-s0/manifest.json"]
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path, **(env or {})})


def planned_data_jobs(wd: Path, env: dict | None = None) -> list[str]:
    proc = snakemake(wd, "--dry-run", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return sorted(re.findall(r"^rule (\w+):", proc.stdout + proc.stderr, re.M))


def generator_copy(tmp_path: Path, name: str, edit) -> dict:
    """PYTHONPATH holding a copy of the package whose synth.py was edited by `edit`."""
    pkg = tmp_path / name
    shutil.copytree(REPO / "avvp", pkg / "avvp", ignore=shutil.ignore_patterns("__pycache__"))
    target = pkg / "avvp/data/synth.py"
    target.write_text(edit(target.read_text()))
    for name in ("workflow", "config"):          # the package finds its schemas and sheets beside itself
        (pkg / name).symlink_to(REPO / name)
    return {"PYTHONPATH": str(pkg)}


def test_workflow_reruns_synth_and_pack_when_the_generator_changes(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    proc = snakemake(wd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert planned_data_jobs(wd) == []
    version = f"GENERATOR_VERSION = {synth.GENERATOR_VERSION}"
    code = generator_copy(tmp_path, "code", lambda s: s.replace('"snr": 8.0,', '"snr": 8.5,'))
    bumped = generator_copy(tmp_path, "bumped", lambda s: s.replace(version, f"GENERATOR_VERSION = 99"))
    comment = generator_copy(tmp_path, "comment", lambda s: s + "\n# a comment is not a new generator\n")
    assert planned_data_jobs(wd, code) == ["pack", "synthesize"]
    assert planned_data_jobs(wd, bumped) == ["pack", "synthesize"]
    assert planned_data_jobs(wd, comment) == []
