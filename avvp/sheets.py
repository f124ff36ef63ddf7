"""The two sheets: the rows and recipes (config/variants.yaml) and the tables (config/tables.yaml).

Each sheet may be several files, merged in order: a user's file adds rows, recipes or tables to the paper's (a
name defined twice is an error naming both files). Every file is validated when it is loaded against its schema
(workflow/schemas/variants.schema.yaml, tables.schema.yaml), whose choices come from the registries; then the
names one file uses of another are checked (a row's recipe, a loss's settings, a table row's variant and base).
Any error is one AvvpError line naming the file, the row and the key, before anything runs. Needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from avvp import constants, models, paths, schema
from avvp.errors import AvvpError
from avvp.registry import EXTRA_LOSSES, LABEL_SOURCES, SCHEDULES

ROOT = Path(__file__).resolve().parents[1]    # the checkout (the package is installed in editable mode)
VARIANTS_FILE = ROOT / "config" / "variants.yaml"
TABLES_FILE = ROOT / "config" / "tables.yaml"
SCHEMAS = ROOT / "workflow" / "schemas"

# libyaml's safe loader where PyYAML has it (several times faster), else the pure-Python one: the same result.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

schema.choices("metric levels", constants.LEVELS)
schema.choices("metric keys", constants.KEYS)
schema.choices("metric columns", constants.COLUMNS)


def read_text(path: str | Path, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise AvvpError(f"{path}: cannot read {what} ({e.strerror})") from None


def read_yaml(path: str | Path, what: str, text: str | None = None) -> dict:
    """A YAML mapping (of `text`, read from `path` when not given); an unreadable file or bad YAML is one line
    naming the file."""
    try:
        data = yaml.load(read_text(path, what) if text is None else text, Loader=LOADER)
    except yaml.YAMLError as e:
        raise AvvpError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise AvvpError(f"{path}: {what} must be a mapping")
    return data


def files(given, default: Path) -> tuple[str, ...]:
    """The sheet's files: those given (a path or a list of paths, in order), else the paper's."""
    if not given:
        return (str(default),)
    return (str(given),) if isinstance(given, (str, Path)) else tuple(str(f) for f in given)


def _contents(given, default: Path, what: str) -> tuple[tuple[str, str], ...]:
    """(path, text) of each file: a sheet is parsed once per content (and again when a file changes)."""
    return tuple((path, read_text(path, what)) for path in files(given, default))


# --------------------------------------------------------------------------------------------- variants

def per_batch_settings() -> dict[str, dict]:
    """The recipe keys of the label sources' settings and of their per-batch rules, with their schemas."""
    rules = [source.per_batch for source in LABEL_SOURCES.values() if source.per_batch is not None]
    own = {name: source.settings for name, source in LABEL_SOURCES.items() if source.settings is not None}
    return {**own, **{rule.key: rule.settings for rule in rules}}


def variants_schema() -> dict:
    """The variants sheet's schema with the rows' model switches, the losses' settings and the per-batch label
    rules' settings filled in."""
    out = read_yaml(SCHEMAS / "variants.schema.yaml", "schema")
    keys = out["$defs"]["recipe_keys"]
    keys.pop("x-loss-settings")
    keys["properties"].update({name: EXTRA_LOSSES.meta(name)["settings"] for name in EXTRA_LOSSES.names()})
    keys["properties"].update(per_batch_settings())
    keys["properties"].update({name: s.settings for name, s in SCHEDULES.items() if s.settings is not None})
    out["$defs"]["variant"]["properties"]["model"] = {**models.spec_schema(dropout=False),
                                                      "required": list(models.CHOICE)}
    return out


def _variants_where(path: str):
    kinds = {"variants": "variant", "recipes": "recipe"}

    def where(at: list) -> str:
        head = f"{kinds[at[0]]} '{at[1]}'" if len(at) > 1 and at[0] in kinds else ".".join(map(str, at))
        rest = ".".join(map(str, at[2:])) if len(at) > 2 and at[0] in kinds else ""
        return ": ".join(part for part in (path, head, rest) if part)
    return where


@dataclass(frozen=True)
class Variants:
    """The merged variants sheet: `recipes` and `variants` (name -> entry), and the file each name is from."""
    recipes: dict
    variants: dict
    origin: dict             # ("recipes" | "variants", name) -> file
    defaults: dict           # a row's keys that may be left out -> their value


def _merge(sheets: list[tuple[str, dict]], sections: tuple[str, ...]) -> tuple[dict, dict]:
    merged: dict = {section: {} for section in sections}
    origin: dict = {}
    for path, data in sheets:
        for section in sections:
            for name, entry in (data.get(section) or {}).items():
                if (section, name) in origin:
                    raise AvvpError(f"{path}: {section[:-1]} '{name}' is already defined in "
                                    f"{origin[(section, name)]}")
                merged[section][name] = entry
                origin[(section, name)] = path
    return merged, origin


def _check_variant(name: str, entry: dict, sheet: Variants) -> None:
    """What one file's schema cannot see: the row's recipe, and its losses' settings in that recipe."""
    where = f"{sheet.origin[('variants', name)]}: variant '{name}'"
    if "runs_of" in entry:
        target = sheet.variants.get(entry["runs_of"])
        if target is None or "runs_of" in target:
            raise AvvpError(f"{where}: runs_of: '{entry['runs_of']}' is not a row with runs of its own")
        trained = [key for key in ("model", "recipe", "recipe_overrides", "labels", "losses") if key in entry]
        if trained:
            raise AvvpError(f"{where}: {trained[0]}: a row with runs_of trains nothing (its {trained[0]} is that "
                            f"row's); only gating and why")
        return
    if entry["recipe"] not in sheet.recipes:
        raise AvvpError(f"{where}: recipe: unknown recipe '{entry['recipe']}' (known: {', '.join(sheet.recipes)})")
    recipe = {**sheet.recipes[entry["recipe"]], **entry.get("recipe_overrides", {})}
    for loss in entry.get("losses", []):
        if not isinstance(recipe.get(loss), dict):
            raise AvvpError(f"{where}: losses: loss '{loss}' needs the recipe key '{loss}' (its settings) in "
                            f"recipe '{entry['recipe']}' or the row's recipe_overrides")
    schedule = SCHEDULES.get(recipe.get("schedule", "step"))
    if schedule.settings is not None and not isinstance(recipe.get(recipe["schedule"]), dict):
        raise AvvpError(f"{where}: recipe: schedule '{recipe['schedule']}' needs the recipe key '{recipe['schedule']}' "
                        f"(its settings) in recipe '{entry['recipe']}' or the row's recipe_overrides")
    labels = entry.get("labels", sheet.defaults.get("labels", "weak"))
    if LABEL_SOURCES.get(labels).settings is not None and not isinstance(recipe.get(labels), dict):
        raise AvvpError(f"{where}: labels: label source '{labels}' needs the recipe key '{labels}' (its settings) in "
                        f"recipe '{entry['recipe']}' or the row's recipe_overrides")
    rule = LABEL_SOURCES.get(labels).per_batch
    if rule is not None and not isinstance(recipe.get(rule.key), dict):
        raise AvvpError(f"{where}: labels: label source '{entry.get('labels')}' acts per batch and needs the recipe "
                        f"key '{rule.key}' (its settings) in recipe '{entry['recipe']}' or the row's recipe_overrides")
    other = {paths.slug(n): n for n in sheet.variants if n != name}.get(paths.slug(name))
    if other is not None:
        raise AvvpError(f"{where}: shares the file name '{paths.slug(name)}' with variant '{other}'")


@lru_cache(maxsize=16)
def _variants(contents: tuple[tuple[str, str], ...], _state: tuple) -> Variants:
    spec = variants_schema()
    loaded = []
    for path, text in contents:
        data = read_yaml(path, "variants file", text)
        schema.check(data, spec, _variants_where(path))
        loaded.append((path, data))
    merged, origin = _merge(loaded, ("recipes", "variants"))
    row = spec["$defs"]["variant"]["properties"]
    sheet = Variants(merged["recipes"], merged["variants"], origin,
                     {key: value["default"] for key, value in row.items() if "default" in value})
    for name, entry in sheet.variants.items():
        _check_variant(name, entry, sheet)
    return sheet


def variants(given=None) -> Variants:
    """The variants sheet of these files (default: config/variants.yaml), validated and merged."""
    return _variants(_contents(given, VARIANTS_FILE, "variants file"), schema.state())


# ----------------------------------------------------------------------------------------------- tables

def _tables_where(path: str, data: dict):
    def where(at: list) -> str:
        if len(at) > 3 and at[0] == "tables" and at[2] == "rows":
            rows = data["tables"][at[1]]["rows"]
            variant = rows[at[3]].get("variant") if isinstance(rows[at[3]], dict) else None
            head = f"table '{at[1]}' row {at[3] + 1}" + (f" ('{variant}')" if variant else "")
            return ": ".join(part for part in (path, head, ".".join(map(str, at[4:]))) if part)
        if len(at) > 1 and at[0] == "tables":
            return ": ".join(part for part in (path, f"table '{at[1]}'", ".".join(map(str, at[2:]))) if part)
        return ": ".join(part for part in (path, ".".join(map(str, at))) if part)
    return where


def _check_table(name: str, table: dict, known: Variants, path: str) -> None:
    """Each row's variant and base exist, and its published numbers belong to the table's columns."""
    shown = {row["variant"] for row in table["rows"]}
    for i, row in enumerate(table["rows"]):
        where = f"{path}: table '{name}' row {i + 1} ('{row['variant']}')"
        if row["variant"] not in known.variants:
            raise AvvpError(f"{where}: variant: unknown variant '{row['variant']}' (not in "
                            f"{', '.join(sorted(set(known.origin.values())))})")
        if row.get("base") is not None and row["base"] not in shown:
            raise AvvpError(f"{where}: base: '{row['base']}' is not a row of this table")
        extra = [f"{level}.{key}" for level, numbers in (row.get("published") or {}).items() for key in numbers
                 if f"{level}.{key}" not in table["columns"]]
        if extra:
            raise AvvpError(f"{where}: published: '{extra[0]}' is not a column of this table")


@lru_cache(maxsize=16)
def _tables(contents: tuple[tuple[str, str], ...], variant_contents: tuple, _state: tuple) -> dict:
    spec = read_yaml(SCHEMAS / "tables.schema.yaml", "schema")
    known = _variants(variant_contents, _state)
    loaded = []
    for path, text in contents:
        data = read_yaml(path, "tables file", text)
        schema.check(data, spec, _tables_where(path, data))
        for name, table in data["tables"].items():
            _check_table(name, table, known, path)
            table["source_paper"] = data.get("source", "")     # the paper of the file the table comes from
        loaded.append((path, data))
    merged, _ = _merge(loaded, ("tables",))
    return merged["tables"]


def tables(given=None, variants_given=None) -> dict:
    """Every table of these tables files (default: config/tables.yaml), checked against the variants sheet:
    name -> spec (title, source, columns, rows, ...; `source_paper`: its file's `source`)."""
    return _tables(_contents(given, TABLES_FILE, "tables file"),
                   _contents(variants_given, VARIANTS_FILE, "variants file"), schema.state())


def table(name: str, given=None, variants_given=None) -> dict:
    """One table's spec; an unknown name is an AvvpError listing the known ones."""
    every = tables(given, variants_given)
    if name not in every:
        raise AvvpError(f"{', '.join(files(given, TABLES_FILE))}: no table '{name}' (has: {', '.join(every)})")
    return dict(every[name])


def published(row: dict, column: str) -> float | None:
    """A table row's published number of a column ('segment.audio'), or None where the paper has none."""
    level, key = column.split(".")
    return ((row.get("published") or {}).get(level) or {}).get(key)
