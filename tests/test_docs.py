"""The docs hold what the code registers: the generated reference is current, every registered name and every method
folder is documented, the README is a first screen, and every `docs/...md#anchor` the code and docs cite exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from avvp import reference
from avvp.registry import REGISTRIES

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").rglob("*.md"))


def docs_text() -> str:
    return "\n".join(p.read_text() for p in [REPO / "README.md", *DOCS])


def test_the_reference_is_generated_from_the_registries():
    """docs/reference.md is `python -m avvp.reference`'s output: a new registration without it fails here."""
    assert (REPO / "docs" / "reference.md").read_text() == reference.text(), \
        "docs/reference.md is stale: python -m avvp.reference > docs/reference.md"


@pytest.mark.parametrize("plural", sorted(REGISTRIES))
def test_every_registered_name_is_in_the_docs(plural):
    text = docs_text()
    registry = REGISTRIES[plural]
    missing = [name for name in registry.names() if f"`{name}`" not in text]
    assert not missing, f"{plural} not in docs/: {missing}"


def test_every_subcommand_is_in_the_docs():
    from avvp import cli

    _, stages = cli.parser()
    text = docs_text()
    assert [c for c in stages if f"`{c}`" not in text and f"avvp {c}" not in text] == []


def test_every_method_folder_has_its_page_and_a_row_of_the_methods_table():
    readme = (REPO / "README.md").read_text()
    for folder in sorted(p for p in (REPO / "avvp" / "methods").iterdir() if (p / "__init__.py").exists()):
        assert (REPO / "docs" / "methods" / f"{folder.name}.md").is_file(), folder.name
        assert f"avvp/methods/{folder.name}/" in readme and f"docs/methods/{folder.name}.md" in readme, folder.name


def test_the_readme_is_a_first_screen():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) < 120
    assert "bash .ci/setup && .venv/bin/snakemake --cores 4 results/table2.md" in "\n".join(lines[:10])
    assert "bash .ci/setup && .venv/bin/python -m pytest" in "\n".join(lines[:10])


def anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", page.read_text(), re.M)}


CITED = re.compile(r"(docs/[\w/\-]+\.md)(?:#([\w\-]+))?")
SOURCES = ["README.md", "ARCHITECTURE.md", "docs/**/*.md", "avvp/**/*.py", "config/*.yaml", "workflow/**/*.smk",
           "workflow/**/*.yaml", "Snakefile", "bench/*.py", "tests/plugins/*.py"]


def test_every_cited_docs_page_and_anchor_exists():
    bad = []
    for pattern in SOURCES:
        for path in REPO.glob(pattern):
            for m in CITED.finditer(path.read_text()):
                page = REPO / m.group(1)
                if not page.is_file():
                    bad.append(f"{path.relative_to(REPO)}: {m.group(0)} (no such page)")
                elif m.group(2) and m.group(2) not in anchors(page):
                    bad.append(f"{path.relative_to(REPO)}: {m.group(0)} (no such heading)")
    assert not bad, "\n".join(sorted(set(bad)))


def test_the_anchor_rule_by_hand():
    assert anchor("MA step 2") == "ma-step-2" and anchor("CMPAE gating") == "cmpae-gating"
    assert anchor("MM-Pyramid switches") == "mm-pyramid-switches" and anchor("Ours recipe") == "ours-recipe"
