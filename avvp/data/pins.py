"""The pinned outputs of the synthetic generator: what `avvp synth` must write, byte for byte.

`avvp/resources/synth_pins.json` records, for the presets `tiny`, `default` and `full` at seed 0, the sha256 of
every file of the dataset's root (the annotation CSVs, the training truth, `synth_manifest.json`), a hash over
each feature folder (`folder_hash`) and the sha256 of the manifest `avvp pack` writes for it; beside them the
generator's version (`synth.GENERATOR_VERSION`) and a hash of the generator's code (`generator_code_hash`).

A change of the generator's code changes the code hash, and a test fails until GENERATOR_VERSION is bumped and
the pins rewritten (`python -m avvp.data.repin --write`): the version names the data, so two checkouts that
call their data "version 1" make the same files. `--write` refuses to pin new code under a version that is
already pinned with other code (`history`). Library versions (numpy's generators, pandas' CSV writer) can
change the bytes too: `constraints.txt` is the environment the pins were made in, and `avvp synth` says in one
line when what it wrote differs from its version's pins.
"""

from __future__ import annotations

import hashlib
import io
import json
import tokenize
from importlib import resources
from pathlib import Path

from avvp import constants
from avvp.constants import DENSE_CSV, FEATURES, WEAK_CSV
from avvp.data.llp import SYNTH_MANIFEST, TRAIN_TRUTH_CSV
from avvp.io import folder_hash, sha256_file

PINS_FILE = "synth_pins.json"
PINNED_PRESETS = ("tiny", "default", "full")
PINNED_SEED = 0
ROOT_FILES = sorted([*WEAK_CSV.values(), *DENSE_CSV.values(), TRAIN_TRUTH_CSV, SYNTH_MANIFEST])
# The inputs of the generator besides its own module: its statistics and the layout constants it writes.
STATISTICS = ("llp_class_stats.csv", "llp_cooccurrence.csv", "llp_label_sets.csv")
LAYOUT = ("CLASSES", "DENSE_CSV", "FEATURES", "FRAMES_PER_SEGMENT", "NUM_CLASSES", "NUM_SEGMENTS", "SPLITS",
          "WEAK_CSV")


# ------------------------------------------------------------------------------------------ hashes
def data_hashes(root: Path) -> dict:
    """The hashes of a synthetic dataset folder, in the pins' layout."""
    root = Path(root)
    files = {name: sha256_file(root / name) for name in ROOT_FILES if (root / name).exists()}
    features = {}
    for kind, (folder, _) in FEATURES.items():
        d = root / "feats" / folder
        features[kind] = folder_hash({p.name: sha256_file(p) for p in d.iterdir() if p.is_file()})
    return {"files": files, "features": features}


def _code_tokens(source: str) -> str:
    """The module's tokens without comments, blank lines and docstrings: a comment edit is no new generator."""
    out, prev = [], tokenize.NEWLINE
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in skip:
            continue
        # A string that opens a logical line is a docstring (or a bare string statement: no effect either).
        if tok.type == tokenize.STRING and prev in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            prev = tokenize.STRING
            continue
        prev = tok.type
        out.append(f"{tok.type}:{tok.string}")
    return "\n".join(out)


def generator_code_hash(source: str | None = None) -> str:
    """sha256 over the generator's code (avvp/data/synth.py's tokens), its statistics and its layout constants."""
    if source is None:
        source = resources.files("avvp").joinpath("data/synth.py").read_text()
    h = hashlib.sha256(_code_tokens(source).encode())
    for name in STATISTICS:
        h.update(resources.files("avvp").joinpath(f"resources/{name}").read_bytes())
    h.update(json.dumps({k: getattr(constants, k) for k in LAYOUT}, sort_keys=True, default=list).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ checks
def load() -> dict:
    return json.loads(resources.files("avvp").joinpath(f"resources/{PINS_FILE}").read_text())


def code_problem(pins: dict, version: int, code: str) -> str | None:
    """Why the pins do not describe this generator (version `version`, code hash `code`), or None."""
    if pins.get("generator_version") != version:
        return (f"{PINS_FILE} pins generator version {pins.get('generator_version')}, the code is version "
                f"{version}: rewrite the pins with `python -m avvp.data.repin --write`")
    if pins.get("code_sha256") != code:
        return (f"the generator's code changed (code hash {code[:12]}, {PINS_FILE} has "
                f"{str(pins.get('code_sha256'))[:12]} for version {version}): bump synth.GENERATOR_VERSION and "
                "rewrite the pins with `python -m avvp.data.repin --write`")
    return None


def differences(pins: dict, version: int, preset: str, seed: int, hashes: dict) -> list[str] | None:
    """Names of the files and feature folders that differ from the pins; None when nothing is pinned."""
    entry = pins.get("presets", {}).get(preset)
    if seed != pins.get("seed") or entry is None or pins.get("generator_version") != version:
        return None
    names = [n for n in sorted(set(entry["files"]) | set(hashes["files"]))
             if entry["files"].get(n) != hashes["files"].get(n)]
    names += [f"feats/{FEATURES[k][0]}" for k in FEATURES if entry["features"].get(k) != hashes["features"].get(k)]
    return names


def check_written(root: Path, preset: str, seed: int) -> str | None:
    """The one line `avvp synth` prints when what it wrote differs from its version's pins, or None. The version
    is the one the dataset's own manifest records (the generator that wrote it)."""
    GENERATOR_VERSION = json.loads((Path(root) / SYNTH_MANIFEST).read_text()).get("generator_version")
    pins = load()
    if seed == pins.get("seed") and preset in pins.get("presets", {}) \
            and pins.get("generator_version") != GENERATOR_VERSION:
        return (f"no pins for generator version {GENERATOR_VERSION} (avvp/resources/{PINS_FILE} pins version "
                f"{pins.get('generator_version')}); the README's numbers were not made from this data")
    diff = differences(pins, GENERATOR_VERSION, preset, seed, data_hashes(root))
    if not diff:
        return None
    return (f"{root}: differs from the pins of generator version {GENERATOR_VERSION} (preset {preset}, seed "
            f"{seed}) in {', '.join(diff)}: not the data of the README's numbers (other library versions than "
            "constraints.txt's?)")
