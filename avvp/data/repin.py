"""`python -m avvp.data.repin`: rewrite the pins of the synthetic generator (avvp/data/pins.py), or refit its
label-set distribution. A tool of the generator's maintainers: run it after a change of avvp/data/synth.py with a
new synth.GENERATOR_VERSION; it refuses to pin new code under a version already pinned with other code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from avvp.data import pack, synth
from avvp.data.llp import LLPPaths
from avvp.data.pins import PINNED_PRESETS, PINNED_SEED, PINS_FILE, code_problem, data_hashes, generator_code_hash, load
from avvp.data.synth import GENERATOR_VERSION
from avvp.errors import AvvpError


def pin_preset(preset: str, seed: int, tmp: Path) -> dict:
    """Generate `preset` into `tmp` and return its pins entry (the packed manifest computed, not packed)."""
    out = tmp / preset
    synth.generate(out, preset, seed, progress=False)
    entry = data_hashes(out)
    text = pack.manifest_text(pack.manifest_of(LLPPaths.from_root(out), frames=True))
    entry["packed_manifest_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return entry


def write(path: Path, presets: tuple[str, ...] = PINNED_PRESETS) -> dict:
    """Rewrite the pins file at `path` for `presets` (the others kept when the version is unchanged)."""
    old = json.loads(path.read_text()) if path.exists() else {}
    code = generator_code_hash()
    history = dict(old.get("history", {}))
    if history.get(str(GENERATOR_VERSION), code) != code:
        raise AvvpError(f"{path}: generator version {GENERATOR_VERSION} is pinned with other code "
                        f"({history[str(GENERATOR_VERSION)][:12]}, now {code[:12]}): bump synth.GENERATOR_VERSION")
    history[str(GENERATOR_VERSION)] = code
    kept = old.get("presets", {}) if old.get("generator_version") == GENERATOR_VERSION else {}
    entries = {p: kept[p] for p in PINNED_PRESETS if p in kept and p not in presets}
    with tempfile.TemporaryDirectory(prefix="avvp-pins-") as tmp:
        for preset in presets:
            entries[preset] = pin_preset(preset, PINNED_SEED, Path(tmp))
            print(f"pinned {preset}", file=sys.stderr)
    pins = {"generator_version": GENERATOR_VERSION, "code_sha256": code, "history": history,
            "seed": PINNED_SEED, "environment": environment(),
            "presets": {p: entries[p] for p in PINNED_PRESETS if p in entries}}
    path.write_text(json.dumps(pins, indent=2) + "\n")
    return pins


def environment() -> dict:
    """The versions of the libraries whose output the bytes depend on (for the reader; constraints.txt locks)."""
    import numpy
    import pandas
    import scipy
    return {"python": ".".join(map(str, sys.version_info[:3])), "numpy": numpy.__version__,
            "pandas": pandas.__version__, "scipy": scipy.__version__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avvp.data.repin", description="rewrite the synthetic generator's pins")
    ap.add_argument("--write", action="store_true", help="generate the presets and rewrite the pins file")
    ap.add_argument("--presets", nargs="+", choices=PINNED_PRESETS, default=list(PINNED_PRESETS))
    ap.add_argument("--label-sets", action="store_true",
                    help="refit the label-set distribution (NNLS) and rewrite resources/llp_label_sets.csv first "
                         "(a new generator input: bump synth.GENERATOR_VERSION and --write)")
    args = ap.parse_args(argv)
    path = Path(__file__).resolve().parents[1] / "resources" / PINS_FILE
    try:
        if args.label_sets:
            (path.parent / synth.LABEL_SETS).write_text(synth.label_sets_csv())
        if args.write:
            write(path, tuple(args.presets))
        problem = code_problem(load(), GENERATOR_VERSION, generator_code_hash())
    except AvvpError as e:
        print(f"pins: error: {e}", file=sys.stderr)
        return 1
    print(problem or f"{path}: pins of generator version {GENERATOR_VERSION} match its code")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
