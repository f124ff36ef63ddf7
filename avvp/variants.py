"""The paper's rows as data: config/variants.yaml maps each row name to model switches and a recipe.

`get(name)` resolves a row once into a typed `Variant`: the full model spec (switches with their defaults,
plus the recipe's dropout), the recipe with the row's overrides, its losses, label source and gating. Training,
MA's refinement, profiling and the workflow all read that one object. This module needs no torch, so the
workflow can import it cheaply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from avvp.errors import AvvpError

# config/variants.yaml of the checkout (the package is installed in editable mode by the set-up script).
DEFAULT_FILE = Path(__file__).resolve().parents[1] / "config" / "variants.yaml"

# The model switches and their defaults (ARCHITECTURE.md, "Model interface"); avvp.models.build checks the
# names of backbones, heads and CM-Co modes against its registries.
MODEL_DEFAULTS = {"backbone": "han", "layers": 1, "stacking": "chained", "head": "mmil", "cmco_mode": "cm",
                  "dropout": 0.1}


@dataclass(frozen=True)
class Variant:
    """One row of the paper, resolved: what `avvp train` builds and how it trains it."""
    name: str
    slug: str
    model: dict          # normalised model spec, the recipe's dropout included: avvp.models.build(model)
    recipe_name: str
    recipe: dict         # the recipe merged with the row's overrides (and an lr_scale, when one was asked for)
    losses: tuple        # extra loss terms beside the MMIL BCE: ma_contrast, cms
    labels: str          # weak | refined
    gating: str          # han | ma
    why: str


def slug(name: str) -> str:
    """A file-system name for a row: 'MA* + CM-Co' -> 'ma_star_cm_co'."""
    s = name.replace("*", "_star").lower()
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")


def normalise_model(spec: dict) -> dict:
    """The spec with defaults filled in; an AvvpError names any unknown switch or out-of-range value."""
    unknown = set(spec) - set(MODEL_DEFAULTS)
    if unknown:
        raise AvvpError(f"model spec: unknown switch(es) {sorted(unknown)} (known: {sorted(MODEL_DEFAULTS)})")
    s = {**MODEL_DEFAULTS, **spec}
    if not isinstance(s["layers"], int) or not 1 <= s["layers"] <= 3:
        raise AvvpError(f"model spec: layers={s['layers']!r} must be 1, 2 or 3")
    if s["backbone"] != "han" and (s["layers"] != 1 or s["stacking"] != "chained"):
        raise AvvpError(f"model spec: layers/stacking apply to the han backbone only, not {s['backbone']}")
    if not 0.0 <= float(s["dropout"]) < 1.0:
        raise AvvpError(f"model spec: dropout={s['dropout']!r} must be in [0, 1)")
    return s


@lru_cache(maxsize=8)
def load(path: str | None = None) -> dict:
    path = Path(path) if path else DEFAULT_FILE
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise AvvpError(f"{path}: cannot read variants file ({e.strerror})") from None
    variants = data["variants"]
    slugs = {}
    for name in variants:
        s = slug(name)
        if s in slugs:
            raise AvvpError(f"{path}: variants '{name}' and '{slugs[s]}' share the slug '{s}'")
        slugs[s] = name
    return data


def scaled_recipe(recipe: dict, lr_scale: float) -> dict:
    """The recipe with its learning rate times `lr_scale`, the scale recorded beside it (1.0: unchanged)."""
    if lr_scale == 1.0:
        return recipe
    if lr_scale <= 0:
        raise AvvpError(f"--lr-scale must be positive, got {lr_scale}")
    return {**recipe, "lr": recipe["lr"] * lr_scale, "lr_scale": lr_scale}


def get(name: str, path: str | None = None, lr_scale: float = 1.0) -> Variant:
    """One row by name or slug, resolved: recipe merged with the row's overrides (row keys win)."""
    data = load(path)
    rows = data["variants"]
    key = name if name in rows else {slug(n): n for n in rows}.get(name)
    if key is None:
        raise AvvpError(f"unknown variant '{name}' (known: {', '.join(rows)})")
    entry = rows[key]
    recipe = scaled_recipe({**data["recipes"][entry["recipe"]], **entry.get("recipe_overrides", {})}, lr_scale)
    dropout = recipe.get("dropout", MODEL_DEFAULTS["dropout"])
    return Variant(name=key, slug=slug(key), model=normalise_model({**entry["model"], "dropout": dropout}),
                   recipe_name=entry["recipe"], recipe=recipe, losses=tuple(entry.get("losses", [])),
                   labels=entry.get("labels", "weak"), gating=entry.get("gating", "han"), why=entry.get("why", ""))


def names(path: str | None = None) -> list[str]:
    return list(load(path)["variants"])
