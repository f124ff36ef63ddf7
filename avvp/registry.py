"""Named registries (timm style): every switch a row of config/variants.yaml names is an entry of one.

`Registry(kind)` maps names to objects: backbones, frame heads, extra losses, label sources, gatings, selection
rules. An entry is registered from the module that defines it (or from a plugin, see avvp/plugins.py), with
optional metadata (e.g. the model switches a backbone reads) that the sheets' schemas are built from, so a new
entry is one module plus one registration and every list of choices derives from here.

An entry's object may be given as "package.module:attribute", imported on first `get`: the registries of torch
code (models, losses) can then be listed, and the sheets validated, without importing torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from avvp.errors import AvvpError


@dataclass
class Entry:
    name: str
    target: Any                      # the object, or "module:attribute" until first resolved
    meta: dict = field(default_factory=dict)


class Registry:
    """Names -> objects of one `kind` ('backbone'), in registration order; `plural` names it in messages."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: Any = None, **meta):
        """Register `target` under `name` (usable as a decorator: `@REG.register("x")`); returns the target."""
        if target is None:
            return lambda obj: self.register(name, obj, **meta)
        if name in self._entries:
            raise AvvpError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = Entry(name, target, dict(meta))
        return target

    def unregister(self, name: str) -> None:
        """Remove an entry (a test that registers its own entries cleans up after itself)."""
        self._entry(name)
        del self._entries[name]

    def _entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise AvvpError(f"unknown {self.kind} '{name}' (known: {', '.join(self._entries) or 'none'})")
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The object registered as `name` (imported now if it was registered by its import path)."""
        entry = self._entry(name)
        if isinstance(entry.target, str):
            module, _, attribute = entry.target.partition(":")
            entry.target = getattr(importlib.import_module(module), attribute)
        return entry.target

    def meta(self, name: str) -> dict:
        """The metadata registered with `name` (nothing is imported)."""
        return self._entry(name).meta

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
