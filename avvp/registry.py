"""Every registry of the harness, declared here, in one low module (mmaction2's `registry.py`, timm's `_registry`).

A row of config/variants.yaml is a composition of names, each an entry of one registry: its backbone and frame
head, its extra losses, its label source, its gating, its recipe's selection rules. The stages of the workflow
(`avvp` subcommands and their Snakemake rules) and the figures are registries too.

Entries are registered by the modules that define them (the core's, each method folder's `avvp/methods/<paper>/`,
and a plugin's from outside, avvp/plugins.py). A registry fills itself on first use: the first `get`, `names`,
`meta` or `in` imports every registering module of `MODULES` and every package under avvp/methods, once. So no
module imports another for the side effect of its registrations, and this module imports nothing of the
harness but its errors.

An entry's object may be given as "package.module:attribute", imported on first `get`: the registries of torch
code (models, losses) can then be listed, and the sheets validated, without importing torch.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
import sys
from dataclasses import dataclass, field
from typing import Any

from avvp.errors import AvvpError

# The core's modules that register entries (each method folder registers from its package's __init__.py).
MODULES = ("avvp.models", "avvp.training.selection", "avvp.training.schedules", "avvp.training.label_sources",
           "avvp.evaluation.gatings", "avvp.stages", "avvp.reporting.figures")
METHODS = "avvp.methods"


@dataclass
class Entry:
    name: str
    target: Any                      # the object, or "module:attribute" until first resolved
    meta: dict = field(default_factory=dict)
    module: str = ""                 # the module that registered it
    seq: int = 0                     # registration order


_SEQ = itertools.count()


def _registrant() -> str:
    """The module calling `register` (past this module's own frames: the decorator form)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


def _rank(entry: Entry) -> tuple:
    """The order entries are listed in, whatever order the modules happened to be imported in: the core's
    modules (MODULES' order), then the method folders by name, then anything else (a plugin) as registered."""
    module = entry.module
    for i, core in enumerate(MODULES):
        if module == core or module.startswith(core + "."):
            return (0, i, entry.seq)
    if module.startswith(METHODS + "."):
        return (1, module.split(".")[2], entry.seq)
    return (2, "", entry.seq)


_filled = False


def fill() -> None:
    """Import every registering module once: the core's, then each method folder (alphabetical)."""
    global _filled
    if _filled:
        return
    _filled = True                   # first: a registering module that reads a registry does not recurse
    for module in MODULES:
        importlib.import_module(module)
    package = importlib.import_module(METHODS)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        importlib.import_module(f"{METHODS}.{info.name}")


def resolve(target: Any) -> Any:
    """The object of "package.module:attribute" (imported now); any other target as it is."""
    if isinstance(target, str) and ":" in target:
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)
    return target


class Registry:
    """Names -> objects of one `kind` ('backbone'), listed in a fixed order (`_rank`); `plural` names it in
    messages and in the schemas' `x-choices`."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, Entry] = {}
        REGISTRIES[self.plural] = self

    def register(self, name: str, target: Any = None, **meta):
        """Register `target` under `name` (usable as a decorator: `@REG.register("x")`); returns the target."""
        if target is None:
            return lambda obj: self.register(name, obj, **meta)
        if name in self._entries:
            raise AvvpError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = Entry(name, target, dict(meta), _registrant(), next(_SEQ))
        return target

    def unregister(self, name: str) -> None:
        """Remove an entry (a test that registers its own entries cleans up after itself)."""
        self._entry(name)
        del self._entries[name]

    def _entry(self, name: str) -> Entry:
        fill()
        if name not in self._entries:
            raise AvvpError(f"unknown {self.kind} '{name}' (known: {', '.join(self._entries) or 'none'})")
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The object registered as `name` (imported now if it was registered by its import path)."""
        entry = self._entry(name)
        entry.target = resolve(entry.target)
        return entry.target

    def meta(self, name: str) -> dict:
        """The metadata registered with `name` (nothing is imported)."""
        return self._entry(name).meta

    def names(self) -> list[str]:
        """The names, core entries first, then each method folder's (by folder name), then a plugin's."""
        fill()
        return [entry.name for entry in sorted(self._entries.values(), key=_rank)]

    def values(self) -> list[Any]:
        """The objects, in the order of `names` (each imported now if given by its path)."""
        return [self.get(name) for name in self.names()]

    def items(self) -> list[tuple[str, Any]]:
        """(name, object) of every entry, in registration order (each imported now if given by its path)."""
        return [(name, self.get(name)) for name in self.names()]

    def __contains__(self, name: str) -> bool:
        fill()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


REGISTRIES: dict[str, Registry] = {}     # plural -> registry (the schemas' `x-choices: <plural>`)

# A row's switches (config/variants.yaml): its model (avvp/models), losses, labels, gating and selection.
BACKBONES = Registry("backbone")
FRAME_HEADS = Registry("frame head")
EXTRA_LOSSES = Registry("loss", "losses")
LABEL_SOURCES = Registry("label source")
GATINGS = Registry("gating")
SELECTION_RULES = Registry("selection rule")
SCHEDULES = Registry("learning-rate schedule")       # a recipe's `schedule` (avvp/training/schedules.py)
# The workflow's stages: each an `avvp` subcommand, and for the generic kinds a Snakemake rule (avvp/stages.py).
STAGES = Registry("stage")
# The figures `avvp figure` draws (avvp/reporting/figures.py).
FIGURES = Registry("figure")
