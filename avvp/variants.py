"""The paper's rows as data: config/variants.yaml maps each row name to model switches and a recipe."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

from avvp.errors import AvvpError

# config/variants.yaml of the checkout (the package is installed in editable mode by the set-up script).
DEFAULT_FILE = Path(__file__).resolve().parents[1] / "config" / "variants.yaml"


def slug(name: str) -> str:
    """A file-system name for a row: 'MA* + CM-Co' -> 'ma_star_cm_co'."""
    s = name.replace("*", "_star").lower()
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")


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


def get(name: str, path: str | None = None) -> dict:
    """The entry of one row, with its recipe merged in (entry keys win), by name or slug."""
    data = load(path)
    variants = data["variants"]
    by_slug = {slug(n): n for n in variants}
    key = name if name in variants else by_slug.get(name)
    if key is None:
        known = ", ".join(variants)
        raise AvvpError(f"unknown variant '{name}' (known: {known})")
    entry = dict(variants[key])
    recipe = dict(data["recipes"][entry["recipe"]])
    recipe.update(entry.get("recipe_overrides", {}))
    return {"name": key, "slug": slug(key), "model": entry["model"], "labels": entry.get("labels", "weak"),
            "losses": entry.get("losses", []), "recipe_name": entry["recipe"], "recipe": recipe,
            "gating": entry.get("gating", "han"), "why": entry.get("why", "")}


def names(path: str | None = None) -> list[str]:
    return list(load(path)["variants"])
