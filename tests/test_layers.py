"""The package's layering, read from its imports: no module imports one on a higher floor, and no import circle.

Every `import avvp...` and `from avvp... import ...` of every module counts, at the top or inside a function alike
(a function-local import is still a dependency). What the registries import on first use (avvp/registry.py
`fill`, by name through importlib) and what the CLI runs (a stage's "module:function") are not imports: they are
how the low floors reach the high ones without depending on them.

The floors, from the ground up (docs/architecture in ARCHITECTURE.md, "Layers"):
  0 base        errors, constants, machine
  1 tools       registry (every registry declared), io, schema, plugins
  2 layout      paths, outputs
  3 data, models                      the data and the model components (no training, no sheets)
  4 sheets      sheets, variants, stages (the rows resolved; the stages declared)
  5 evaluation  metrics, gatings, evaluate, ...
  6 training    the loop, the losses' interface, label sources, selection
  7 methods     avvp/methods/<paper>/: each paper's components and stages
  8 reporting   tables, figures, diagnostics, profile, runs
  9 entry       cli, __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "avvp"

FLOORS = [
    ("avvp.errors", 0), ("avvp.constants", 0), ("avvp.machine", 0),
    ("avvp.registry", 1), ("avvp.io", 1), ("avvp.schema", 1), ("avvp.plugins", 1),
    ("avvp.paths", 2), ("avvp.outputs", 2),
    ("avvp.data", 3), ("avvp.models", 3),
    ("avvp.sheets", 4), ("avvp.variants", 4), ("avvp.stages", 4),
    ("avvp.evaluation", 5),
    ("avvp.training", 6),
    ("avvp.methods", 7),
    ("avvp.reporting", 8),
    ("avvp.cli", 9), ("avvp.__main__", 9), ("avvp.reference", 9),
]


def floor(module: str) -> int:
    """The floor of a module: that of the longest prefix listed (the package `avvp` itself is the ground)."""
    best = max((prefix for prefix, _ in FLOORS if module == prefix or module.startswith(prefix + ".")),
               key=len, default=None)
    if best is None:
        if module == "avvp":
            return 0
        raise AssertionError(f"{module}: on no floor (add it to FLOORS)")
    return dict(FLOORS)[best]


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package `module` imports, anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from avvp.x import y` imports the module avvp.x.y when y is one, else avvp.x
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {i for i in imports(m, p, known) if i.startswith("avvp")} for m, p in mods.items()}


def upward(deps: dict[str, set[str]]) -> list[str]:
    """Every import from a floor to a higher one, as 'a (floor) -> b (floor)'."""
    return sorted(f"{m} (floor {floor(m)}) -> {i} (floor {floor(i)})" for m, targets in deps.items() for i in targets
                  if floor(i) > floor(m))


def circles(deps: dict[str, set[str]]) -> list[str]:
    """One line per import circle found by a depth-first walk ('a -> b -> a')."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(deps.get(node, ())):
            if state.get(nxt) == "open":
                found.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]))
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in sorted(deps):
        if node not in state:
            visit(node, [])
    return found


def test_every_module_is_on_a_floor():
    for module in graph():
        floor(module)


def test_no_module_imports_a_higher_floor():
    found = upward(graph())
    assert not found, "imports up the floors:\n" + "\n".join(found)


def test_the_imports_have_no_circle():
    found = circles(graph())
    assert not found, "import circles:\n" + "\n".join(found)


def test_the_checks_see_a_hand_made_upward_import_and_circle(tmp_path):
    """The checks themselves, on a package written here: a local import from data up to training, and a circle
    between two data modules (one of its imports inside a function)."""
    pkg = tmp_path / "avvp"
    (pkg / "data").mkdir(parents=True)
    (pkg / "training").mkdir()
    for init in (pkg, pkg / "data", pkg / "training"):
        (init / "__init__.py").write_text("")
    (pkg / "training" / "train.py").write_text("X = 1\n")
    (pkg / "data" / "a.py").write_text("from avvp.data import b\n\ndef f():\n    from avvp.training.train import X\n")
    (pkg / "data" / "b.py").write_text("def g():\n    from . import a\n")
    mods = {}
    for path in pkg.rglob("*.py"):
        parts = list(path.relative_to(tmp_path).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    deps = {m: {i for i in imports(m, p, set(mods)) if i.startswith("avvp")} for m, p in mods.items()}
    assert deps["avvp.data.a"] == {"avvp.data.b", "avvp.training.train"}
    assert upward(deps) == ["avvp.data.a (floor 3) -> avvp.training.train (floor 6)"]
    assert circles(deps) == ["avvp.data.a -> avvp.data.b -> avvp.data.a"]
