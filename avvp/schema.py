"""JSON schemas whose choices come from the registries, and their errors as one line.

A schema fragment may say `x-choices: <name>`, the plural of a registry (e.g. `backbones`, avvp/registry.py) or
another named list (the metric columns, `choices`): `resolved` fills in `enum` with its current names when the
schema is used, so a choice is listed once, by the entry's registration. `check` validates an instance and raises the most specific error as
one AvvpError line that names where it is.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterable

from avvp.errors import AvvpError
from avvp.registry import REGISTRIES

# name -> the function listing its choices: every registry by its plural, and the fixed lists of `choices`.
_CHOICES: dict[str, Callable[[], Iterable[str]]] = {}


def _names(name: str) -> Iterable[str]:
    return REGISTRIES[name].names() if name in REGISTRIES else _CHOICES[name]()


def choices(name: str, values: Iterable[str]) -> None:
    """Make a fixed list nameable by `x-choices: <name>` in schemas."""
    values = tuple(values)
    _CHOICES[name] = lambda: values


def state() -> tuple:
    """Every named list as it is now (a cache of schemas resolved earlier is stale when this changes)."""
    return tuple((name, tuple(_names(name))) for name in [*REGISTRIES, *_CHOICES])


def resolved(schema: dict) -> dict:
    """A copy of `schema` with every `x-choices` fragment given the current names as its `enum`."""
    out = copy.deepcopy(schema)
    stack = [out]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "x-choices" in node:
                node["enum"] = sorted(_names(node["x-choices"]))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return out


def _allowed_keys(error) -> list[str]:
    """The keys an object may hold: its schema's `properties` and those of every `allOf` branch in force."""
    import jsonschema

    schema, keys = error.schema, list(error.schema.get("properties", {}))
    for branch in schema.get("allOf", []):
        condition = branch.get("if")
        if condition is None or jsonschema.Draft202012Validator(condition).is_valid(error.instance):
            keys += list(branch.get("then", branch).get("properties", {}))
    return keys


def message(error) -> str:
    """jsonschema's message, with unknown keys and registry choices said plainly."""
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        allowed = _allowed_keys(error)
        unexpected = [key for key in error.instance if key not in allowed]
        return f"unknown key {', '.join(map(repr, unexpected))} (known: {', '.join(allowed)})"
    named = error.schema.get("x-choices") if isinstance(error.schema, dict) else None
    return error.message + (f" ({named})" if named else "")


def _specificity(error):
    # The deepest error says most about what is wrong (a bad backbone name leaves its switches unevaluated too).
    return error.validator == "unevaluatedProperties", -len(error.absolute_path), list(map(str, error.path))


def check(instance, schema: dict, where: Callable[[list], str]) -> None:
    """AvvpError (one line) unless `instance` matches the resolved `schema`; `where(path)` names the place."""
    import jsonschema  # here, not at the top: registering entries (and `avvp --help`) does not need it

    validator = jsonschema.Draft202012Validator(resolved(schema))
    errors = sorted(validator.iter_errors(instance), key=_specificity)
    if errors:
        error = errors[0]
        raise AvvpError(f"{where(list(error.absolute_path))}: {message(error)}")
