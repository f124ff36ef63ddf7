"""The paper's rows as data: config/variants.yaml maps each row name to model switches and a recipe.

`get(name)` resolves a row once into a typed `Variant`: the full model spec (the switches of its backbone and
head with their defaults, plus the recipe's dropout), the recipe with the row's overrides, its losses, label
source and gating. Training, profiling, the tables and the workflow all read that one object. The sheet
is validated when it is loaded (avvp/sheets.py); `files` is the variants sheet's files (default: the paper's).
This module needs no torch, so the workflow can import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from avvp import models, paths, sheets
from avvp.errors import AvvpError
from avvp.paths import slug

DEFAULT_FILE = sheets.VARIANTS_FILE


@dataclass(frozen=True)
class Variant:
    """One row of the paper, resolved: what `avvp train` builds and how it trains it."""
    name: str
    slug: str            # its name made file-safe (paths.slug): its profile's file, its logs
    runs: str            # the slug of the runs it reads: its own, or that of the row named by `runs_of`
    model: dict          # normalised model spec, the recipe's dropout included: avvp.models.build(model)
    recipe_name: str
    recipe: dict         # the recipe merged with the row's overrides (and an lr_scale, when one was asked for)
    losses: tuple        # extra loss terms beside the MMIL BCE (EXTRA_LOSSES), in the order they are added
    labels: str          # its label source (LABEL_SOURCES)
    gating: str          # its gating (GATINGS)
    runs_gating: str     # the gating its runs were scored under in their metrics.json (its own, or runs_of's)
    why: str


def scaled_recipe(recipe: dict, lr_scale: float) -> dict:
    """The recipe with its learning rate times `lr_scale`, the scale recorded beside it (1.0: unchanged)."""
    if lr_scale == 1.0:
        return recipe
    if lr_scale <= 0:
        raise AvvpError(f"--lr-scale must be positive, got {lr_scale}")
    return {**recipe, "lr": recipe["lr"] * lr_scale, "lr_scale": lr_scale}


def get(name: str, files=None, lr_scale: float = 1.0) -> Variant:
    """One row by name or slug, resolved: recipe merged with the row's overrides (row keys win)."""
    sheet = sheets.variants(files)
    rows = sheet.variants
    key = name if name in rows else {slug(n): n for n in rows}.get(name)
    if key is None:
        raise AvvpError(f"unknown variant '{name}' (known: {', '.join(rows)})")
    if "runs_of" in rows[key]:       # another row's runs, scored under this row's gating
        runs = get(rows[key]["runs_of"], files, lr_scale)
        return replace(runs, name=key, slug=slug(key), gating=rows[key].get("gating", runs.gating),
                       runs_gating=runs.gating, why=rows[key].get("why", ""))
    entry = {**sheet.defaults, **rows[key]}
    recipe = scaled_recipe({**sheet.recipes[entry["recipe"]], **entry.get("recipe_overrides", {})}, lr_scale)
    model = models.normalise({**entry["model"], "dropout": recipe["dropout"]})
    return Variant(name=key, slug=slug(key), runs=slug(key), model=model,
                   recipe_name=entry["recipe"], recipe=recipe, losses=tuple(entry["losses"]),
                   labels=entry["labels"], gating=entry["gating"], runs_gating=entry["gating"], why=entry["why"])


def names(files=None) -> list[str]:
    return list(sheets.variants(files).variants)


def trained(files=None) -> list[str]:
    """The rows with runs of their own (every row but those with `runs_of`)."""
    rows = sheets.variants(files).variants
    return [name for name, entry in rows.items() if "runs_of" not in entry]


def resolve(names, files=None) -> dict[str, Variant]:
    """Rows by name, each resolved once (a table's rows and bases: what its readers carry)."""
    return {name: get(name, files) for name in dict.fromkeys(names)}


def run_dir(row: Variant, seed, results=paths.RESULTS) -> Path:
    """The folder holding this row's run of a seed: the one name every reader of runs uses (another row's, for a
    `runs_of` row)."""
    return paths.run_folder(row.runs, seed, results)


def epochs_under(name: str, override: int | None, files=None) -> int | None:
    """The epochs a row trains when the config overrides every recipe's with `override` (None: none): that many,
    or for a row that sets its own epochs in `recipe_overrides` the same share of it, round(override x its epochs
    / its recipe's), at least 1 (MA's step 1: 12 of HAN's 40)."""
    if not override:
        return None
    row = get(name, files)
    full = sheets.variants(files).recipes[row.recipe_name]["epochs"]
    return override if row.recipe["epochs"] == full else max(1, round(override * row.recipe["epochs"] / full))


def row_kinds(files=None, tables_files=None) -> list[str]:
    """Every kind of training step the sheets hold: for each backbone, frame head, label source and extra loss a
    row names, the first row that uses it (the tables' rows first, in their order; then the sheet's), each once.
    What a test or benchmark that must see every step runs (a component registered anew brings its row in)."""
    rows = trained(files)
    tabled = [get(r["variant"], files).runs for t in sheets.tables(tables_files, files).values() for r in t["rows"]]
    by_slug = {slug(name): name for name in rows}
    order = list(dict.fromkeys([by_slug[s] for s in tabled if s in by_slug] + rows))
    kinds = []
    for part in ("backbone", "head", "labels", "losses"):
        seen = set()
        for name in order:
            row = get(name, files)
            used = row.model.get(part) if part in ("backbone", "head") else getattr(row, part)
            for entry in (used if part == "losses" else (used,)):
                if entry not in seen:
                    seen.add(entry)
                    kinds.append(name)
    return list(dict.fromkeys(kinds))
