"""One table as a self-contained HTML page (results/<table>.html): the header, the table itself, the legend and
the training curves beside it, with the image embedded, so the Snakemake report shows the table as a table
(its iframe holds a single file) and a reader can open the page alone.

The markdown of `avvp table` is converted here by its few line forms (quote, heading, list item, table, text),
not by a markdown library: the header and the legend are written by avvp/reporting/tables.py, so the forms are
known.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em 2em; color: #222; }
table.avvp { border-collapse: collapse; font-size: 12px; margin: 1em 0; }
table.avvp th, table.avvp td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
table.avvp td:first-child, table.avvp th:first-child { text-align: left; }
blockquote { border-left: 4px solid #d62728; margin: 0.5em 0; padding: 0.2em 0.8em; background: #fdf0f0; }
li.warning { color: #b30000; font-weight: bold; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def inline(text: str) -> str:
    """Escaped text with markdown's `code` and **bold**."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def lines_html(lines: list[str]) -> str:
    """Header or legend lines: '> ' quote, '# ' heading, '- ' / '  - ' list items, else paragraphs."""
    out, in_list = [], False
    for line in lines:
        item = re.match(r"( *)- (.*)", line)
        if item and not in_list:
            out.append("<ul>")
            in_list = True
        if not item and in_list:
            out.append("</ul>")
            in_list = False
        if item:
            warn = ' class="warning"' if item.group(2).startswith("WARNING") else ""
            indent = ' style="margin-left: 1.5em"' if item.group(1) else ""
            out.append(f"<li{warn}{indent}>{inline(item.group(2))}</li>")
        elif line.startswith("> "):
            out.append(f"<blockquote>{inline(line[2:])}</blockquote>")
        elif line.startswith("# "):
            out.append(f"<h1>{inline(line[2:])}</h1>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def image_html(png: str | Path | None) -> str:
    if not png:
        return ""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (f'<h2>Training curves</h2>\n<img alt="training curves ({html.escape(Path(png).name)})" '
            f'src="data:image/png;base64,{data}">')


def table_page(parts: dict, curves_png: str | Path | None = None) -> str:
    """The page of one table from avvp.reporting.tables.assemble's parts (and its curves figure, if drawn)."""
    title = next((line[2:] for line in parts["head"] if line.startswith("# ")), "table")
    table = parts["frame"].to_html(index=False, escape=True, border=0, classes="avvp")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n{lines_html(parts['head'])}\n{table}\n"
            f"{lines_html(parts['legend'])}\n{image_html(curves_png)}\n</body></html>\n")
