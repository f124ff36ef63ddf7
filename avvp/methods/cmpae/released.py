"""The per-class values CMPAE ships (cmpae_ratios.csv beside this file; its source in cmpae_ratios.md): the noise
ratios its denoising uses and its tuned visual thresholds, both estimated on real LLP."""

from __future__ import annotations

import csv
import io
from importlib import resources

from avvp.constants import CLASSES
from avvp.errors import AvvpError

FILE = "cmpae_ratios.csv"


def _rows() -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(resources.files(__package__).joinpath(FILE).read_text())))
    if [r["class"] for r in rows] != CLASSES:
        raise AvvpError(f"avvp/methods/cmpae/{FILE}: its classes are not LLP's 25 in order")
    return rows


def released_thresholds() -> list[float]:
    """The 25 visual thresholds CMPAE ships."""
    return [float(r["tau"]) for r in _rows()]


def released_ratios(files: dict):
    """The label source `cmpae_released`'s values: the 2 x 25 noise ratios CMPAE ships, (2, C) float64, checked
    as every ratios file is (avvp/methods/jomold/denoise.py)."""
    import torch

    from avvp.methods.jomold.denoise import FORMAT, ratios_of_record

    rows = _rows()
    record = {"format": FORMAT, "audio": {"ratio": [float(r["r_a"]) for r in rows]},
              "visual": {"ratio": [float(r["r_v"]) for r in rows]}}
    return torch.stack(ratios_of_record(record, f"avvp/methods/cmpae/{FILE}"))
