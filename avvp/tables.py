"""`avvp table`: one of the paper's Tables 1-4, assembled from evaluated runs.

For every row of config/tables.yaml the table shows our mean ± std over seeds (from
`<results>/runs/<slug>/seed<S>/test/metrics.json`), the paper's published number and the difference
(ours - paper). A row that extends another (its `base`, e.g. 'MA* + Ours' extends 'MA*') is compared
with it by a paired t-test over the same seeds, so a reader can tell a consistent gain from seed noise.
Table 4 also reports parameters and FLOPs from `<results>/profile/<slug>.json`, both in the paper's
convention (thop MACs, attention skipped) and truly counted. The markdown header records everything a
reader needs to judge the numbers: the data (synthetic or real), annotation version and hash,
protocol, seeds, epochs, HAN stacking and the code's git commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from avvp import paths
from avvp import variants as variants_mod
from avvp.errors import AvvpError
from avvp.io import git_commit, sha256_file, write_text

# How the paper prints its two header rows (event type, then Seg./Event), flattened into one.
EVENT_TYPES = {"audio": "Audio", "visual": "Visual", "audio_visual": "Audio-visual",
               "type_av": "Type@AV", "event_av": "Event@AV"}
LEVELS = {"segment": "Seg.", "event": "Event"}

# Significance marks of the paired test against the base row (two-sided).
MARKS = [(0.01, "‡"), (0.05, "†")]

# Table 4's cost columns: (csv key, markdown label, profile field, scale).
COST_COLUMNS = [
    ("gflops_paper", "GFLOPs (paper conv.)", "paper_macs", 1e9),
    ("params_m_paper", "Params M (paper conv.)", "paper_params", 1e6),
    ("gflops_true", "GFLOPs (true, 2xMAC)", "true_flops", 1e9),
    ("params_m_true", "Params M (true)", "true_params", 1e6),
]
PUBLISHED_COSTS = {"gflops_paper": "gflops", "params_m_paper": "params"}


def column_label(key: str) -> str:
    """'segment.audio' -> 'Audio Seg.' (the paper's two header rows, flattened)."""
    level, kind = key.split(".")
    return f"{EVENT_TYPES[kind]} {LEVELS[level]}"


# --------------------------------------------------------------------------------------------- inputs

def _read_yaml(path: Path, what: str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise AvvpError(f"{path}: cannot read {what} ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise AvvpError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise AvvpError(f"{path}: {what} must be a mapping")
    return data


def _read_json(path: Path, hint: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AvvpError(f"{path}: missing ({hint})") from None
    except json.JSONDecodeError as e:
        raise AvvpError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None


def load_table_spec(path: str | Path, table: str, variants_file: str | None = None) -> dict:
    """One table of tables.yaml, checked: known variants, one published number per column."""
    data = _read_yaml(Path(path), "tables file")
    tables = data.get("tables", {})
    if table not in tables:
        raise AvvpError(f"{path}: no table '{table}' (has: {', '.join(tables)})")
    spec = dict(tables[table])
    spec["source_paper"] = data.get("source", "")
    known = set(variants_mod.names(variants_file))
    columns = spec["columns"]
    for i, row in enumerate(spec["rows"]):
        for name in (row["variant"], row.get("base")):
            if name is not None and name not in known:
                raise AvvpError(f"{path}: {table} row {i + 1}: unknown variant '{name}' "
                                "(not in config/variants.yaml)")
        pub = row.get("published")
        if pub is not None and len(pub) != len(columns):
            raise AvvpError(f"{path}: {table} row '{row['variant']}': {len(pub)} published numbers "
                            f"for {len(columns)} columns")
    return spec


def load_metrics(results: Path, variant: str, seed: int, columns: list[str]) -> np.ndarray:
    """The test-split numbers of one run, in `columns` order."""
    run = paths.run_dir(variant, seed, results)
    path = paths.metrics_json(run, "test")
    metrics = _read_json(path, f"make it with: avvp evaluate --run {run} --split test")
    out = []
    for key in columns:
        level, kind = key.split(".")
        try:
            out.append(float(metrics[level][kind]))
        except (KeyError, TypeError, ValueError):
            raise AvvpError(f"{path}: no number for '{key}'") from None
    return np.array(out)


def load_profile(results: Path, variant: str) -> dict:
    path = paths.profile_json(variant, results)
    prof = _read_json(path, f'make it with: avvp profile --variant "{variant}" --out {path}')
    out = {}
    for key, _, field_name, scale in COST_COLUMNS:
        if field_name not in prof:
            raise AvvpError(f"{path}: no '{field_name}'")
        out[key] = float(prof[field_name]) / scale
    return out


# ------------------------------------------------------------------------------------------ statistics

def paired_p(values: np.ndarray, base: np.ndarray) -> float | None:
    """Two-sided paired t-test of one metric over the same seeds; None where it is undefined
    (fewer than two seeds, or the per-seed differences are constant so their variance is zero)."""
    diff = values - base
    if len(diff) < 2 or np.allclose(diff, diff[0], rtol=0.0, atol=1e-12):
        return None
    return float(stats.ttest_rel(values, base).pvalue)


def mark(p: float | None) -> str:
    if p is None:
        return ""
    for level, sign in MARKS:
        if p < level:
            return sign
    return ""


@dataclass
class Row:
    variant: str
    label: str
    base: str | None
    published: list | None
    values: np.ndarray                      # (seeds, columns)
    p: list = field(default_factory=list)   # per column: p-value against the base row, or None
    costs: dict = field(default_factory=dict)
    published_costs: dict = field(default_factory=dict)

    @property
    def mean(self) -> np.ndarray:
        return self.values.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        # Sample standard deviation over seeds (ddof=1); undefined for a single seed.
        if len(self.values) < 2:
            return np.full(self.values.shape[1], np.nan)
        return self.values.std(axis=0, ddof=1)


def collect(spec: dict, results: Path, seeds: list[int], with_costs: bool) -> list[Row]:
    """Every row's per-seed numbers, paired tests against its base and (table 4) its costs."""
    columns = spec["columns"]
    cache: dict[str, np.ndarray] = {}

    def values(variant: str) -> np.ndarray:
        if variant not in cache:
            cache[variant] = np.stack([load_metrics(results, variant, s, columns) for s in seeds])
        return cache[variant]

    rows = []
    for r in spec["rows"]:
        row = Row(variant=r["variant"], label=r.get("label", r["variant"]), base=r.get("base"),
                  published=r.get("published"), values=values(r["variant"]))
        if row.base is not None:
            base = values(row.base)
            row.p = [paired_p(row.values[:, j], base[:, j]) for j in range(len(columns))]
        else:
            row.p = [None] * len(columns)
        if with_costs:
            row.costs = load_profile(results, row.variant)
            row.published_costs = {k: r.get(v) for k, v in PUBLISHED_COSTS.items()}
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- header

def load_runs_info(results: Path, variants: list[str], seeds: list[int]) -> dict:
    """run.json of every run (where present): variant -> list of dicts."""
    info = {}
    for v in variants:
        info[v] = []
        for s in seeds:
            path = paths.run_json(paths.run_dir(v, s, results))
            if path.exists():
                info[v].append(_read_json(path, "written by avvp train"))
    return info


def find_manifest(data: str | None, runs: dict, config: dict) -> tuple[Path | None, dict | None]:
    """The packed dataset's manifest: --data first, then the runs' own `data`, then the config's default."""
    if data:
        path = paths.manifest_json(data)
        return path, _read_json(path, f"make it with: avvp pack --data RAW --out {data}")
    candidates = [Path(r["data"]) for rs in runs.values() for r in rs if r.get("data")]
    default = paths.packed_dir(config.get("dataset") or {})
    if default is not None:
        candidates.append(default)
    for packed in candidates:
        path = paths.manifest_json(packed)
        if path.exists():
            return path, _read_json(path, "")
    return None, None


def _describe_values(by_variant: dict[str, set]) -> str:
    """'40 (all rows)' or 'HAN: 40; MA: 12' for a per-run setting."""
    every = set().union(*by_variant.values()) if by_variant else set()
    if not every:
        return "unknown (no run.json)"
    if len(every) == 1 and all(by_variant.values()):
        return f"{next(iter(every))} (all rows)"
    return "; ".join(f"{v}: {', '.join(map(str, sorted(s, key=str))) or 'unknown'}"
                     for v, s in by_variant.items())


def stacking_line(spec: dict, variants_file: str | None, runs: dict | None = None) -> str:
    """Which HAN stacking the multi-layer rows use (SPEC 3: the released code re-reads the inputs).
    The runs' own run.json `spec` wins over config/variants.yaml: it is what was trained."""
    parts = []
    for r in spec["rows"]:
        model = variants_mod.get(r["variant"], variants_file).model
        trained = [x.get("spec") for x in (runs or {}).get(r["variant"], []) if isinstance(x.get("spec"), dict)]
        layers = {int(t.get("layers", 1)) for t in trained} or {int(model.get("layers", 1))}
        if model.get("backbone") != "han" or max(layers) < 2:
            continue
        hows = sorted({t.get("stacking", "chained") for t in trained}) or [model.get("stacking", "chained")]
        for how in hows:
            why = ("every layer reads the original inputs, as the released code; only the last shapes "
                   "the output" if how == "released" else "each layer reads the previous one's output")
            parts.append(f"{r['variant']}: {how} ({why})")
    return "; ".join(parts) if parts else "single layer only (no stacked-HAN rows in this table)"


def header(table: str, spec: dict, config: dict, seeds: list[int], data: str | None, runs: dict,
           variants_file: str | None) -> list[str]:
    manifest_path, manifest = find_manifest(data, runs, config)
    ds = config.get("dataset") or {}
    synthetic_entry = (manifest or {}).get("synthetic")
    synthetic = bool(synthetic_entry) or (manifest or {}).get("annotation_version") == "synthetic" \
        or (manifest is None and ds.get("kind") == "synthetic")
    lines = []
    if synthetic:
        lines.append("> **SYNTHETIC DATA: these numbers are NOT comparable with the paper's.** They test the "
                     "harness end to end; the 'paper' rows are shown only for reference.")
        lines.append("")
    lines.append(f"# {spec['source']} ({table}): {spec['title']}")
    lines.append("")
    if synthetic:
        entry = synthetic_entry if isinstance(synthetic_entry, dict) else {}
        preset = entry.get("preset", ds.get("preset", "unknown"))
        seed = entry.get("seed", ds.get("seed", "unknown"))
        lines.append(f"- Dataset: synthetic (preset `{preset}`, generator seed {seed})")
    else:
        lines.append(f"- Dataset: real LLP (`{ds.get('path') or 'path unknown'}`)")
    if manifest is not None:
        version = manifest.get("annotation_version", "unknown")
        hashes = manifest.get("hashes") or {}
        audio_hash = hashes.get("AVVP_eval_audio.csv", "unknown")
        sha = sha256_file(manifest_path)
        lines.append(f"- Annotation version: {version} (AVVP_eval_audio.csv sha256 `{audio_hash}`)")
        lines.append(f"- Packed data: `{manifest_path.parent}` (manifest.json sha256 `{sha[:16]}`)")
    else:
        lines.append("- Annotation version: unknown (no packed manifest found; pass --data PACKED)")
    run_hashes = {r.get("data_manifest_sha256") for rs in runs.values() for r in rs} - {None}
    if len(run_hashes) > 1:
        lines.append(f"- WARNING: the runs were trained on {len(run_hashes)} different packed datasets "
                     "(run.json data_manifest_sha256 differ)")
    protocols = {v: {r.get("protocol") for r in rs} - {None} for v, rs in runs.items()}
    lines.append(f"- Protocol: config `{config.get('protocol', 'default')}`; runs: {_describe_values(protocols)}")
    lines.append(f"- Seeds: {', '.join(map(str, seeds))} ({len(seeds)} per row)")
    epochs_cfg = config.get("epochs")
    epochs_cfg = "each recipe's own" if epochs_cfg is None else str(epochs_cfg)
    epochs = {v: {r.get("epochs") for r in rs} - {None} for v, rs in runs.items()}
    lines.append(f"- Epochs: config {epochs_cfg}; runs: {_describe_values(epochs)}")
    precisions = {v: {r.get("precision") for r in rs} - {None} for v, rs in runs.items()}
    lines.append(f"- Precision: {_describe_values(precisions)}")
    scales = {v: {(r.get("recipe") or {}).get("lr_scale", 1.0) for r in rs} for v, rs in runs.items()}
    if any(scale != {1.0} for scale in scales.values()):
        lines.append(f"- Learning-rate scale on the recipe (1 = the paper's): {_describe_values(scales)}")
    lines.append(f"- HAN stacking of the layer rows: {stacking_line(spec, variants_file, runs)}")
    commits = sorted({r.get("git_commit") for rs in runs.values() for r in rs} - {None})
    runs_commit = f"; runs trained at {', '.join(commits)}" if commits else ""
    lines.append(f"- Code: git commit {git_commit()}{runs_commit}")
    if spec.get("note"):
        lines.append(f"- Note: {spec['note']}")
    lines.append("")
    return lines


# ------------------------------------------------------------------------------------------- rendering

def _f(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "—"
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def _f2(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "—"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def markdown_frame(rows: list[Row], columns: list[str], with_costs: bool) -> pd.DataFrame:
    """Three lines per method: ours (mean ± std, mark), the paper's number, ours - paper."""
    labels = [column_label(c) for c in columns]
    cost_labels = [label for _, label, _, _ in COST_COLUMNS] if with_costs else []
    records = []
    for row in rows:
        n = len(row.values)
        ours = {"Method": row.label, "": f"ours (n={n})"}
        paper = {"Method": "", "": "paper" if row.published is not None else "paper (not in the paper)"}
        delta = {"Method": "", "": "ours - paper"}
        for j, lab in enumerate(labels):
            m, s = row.mean[j], row.std[j]
            ours[lab] = (_f(m) if np.isnan(s) else f"{m:.1f} ± {s:.1f}") + mark(row.p[j])
            pub = None if row.published is None else row.published[j]
            paper[lab] = _f(pub)
            delta[lab] = _f(None if pub is None else m - pub, signed=True)
        for key, lab, _, _ in (COST_COLUMNS if with_costs else []):
            ours[lab] = _f2(row.costs[key])
            pub = row.published_costs.get(key)
            paper[lab] = _f2(pub)
            delta[lab] = _f2(None if pub is None else row.costs[key] - pub, signed=True)
        records += [ours, paper, delta] if row.published is not None else [ours]
    return pd.DataFrame.from_records(records, columns=["Method", ""] + labels + cost_labels)


def csv_frame(table: str, rows: list[Row], columns: list[str], seeds: list[int], with_costs: bool) -> pd.DataFrame:
    """Long format: one line per (row, number), with every seed's value and the paired test."""
    records = []
    for row in rows:
        for j, key in enumerate(columns):
            pub = None if row.published is None else row.published[j]
            records.append({
                "table": table, "variant": row.variant, "label": row.label, "base": row.base,
                "metric": key, "column": column_label(key), "n_seeds": len(seeds),
                "seeds": " ".join(map(str, seeds)), "values": " ".join(f"{v:.4f}" for v in row.values[:, j]),
                "mean": row.mean[j], "std": row.std[j], "published": pub,
                "diff": None if pub is None else row.mean[j] - pub,
                "p_vs_base": "" if row.base is None else ("n/a" if row.p[j] is None else row.p[j]),
                "mark": mark(row.p[j]),
            })
        for key, lab, _, _ in (COST_COLUMNS if with_costs else []):
            pub = row.published_costs.get(key)
            records.append({
                "table": table, "variant": row.variant, "label": row.label, "base": row.base,
                "metric": key, "column": lab, "n_seeds": None, "seeds": "", "values": "",
                "mean": row.costs[key], "std": None, "published": pub,
                "diff": None if pub is None else row.costs[key] - pub, "p_vs_base": "", "mark": "",
            })
    frame = pd.DataFrame.from_records(records)
    frame["n_seeds"] = frame["n_seeds"].astype("Int64")
    return frame


def legend(spec: dict, rows: list[Row], seeds: list[int], with_costs: bool) -> list[str]:
    label = {r.variant: r.label for r in rows}
    pairs = ", ".join(f"{r.label} vs {label.get(r.base, r.base)}" for r in rows if r.base)
    lines = [
        "",
        f"ours: mean ± sample std (ddof=1) over {len(seeds)} seed(s) of the test-split F-scores (%); "
        f"paper: {spec['source']} of {spec['source_paper']}; ours - paper: the difference of the means.",
        "† p < 0.05, ‡ p < 0.01: two-sided paired t-test (scipy.stats.ttest_rel) over the same seeds against "
        "the row's base (n/a, unmarked, with fewer than 2 seeds or constant differences)"
        + (f"; compared: {pairs}." if pairs else "."),
    ]
    extra = [r.label for r in rows if r.published is None]
    if extra:
        lines.append(f"Not in the paper (controls): {', '.join(extra)}.")
    if with_costs:
        lines.append("Paper conv.: thop multiply-accumulates / 1e9 and counted parameters / 1e6 over a batch of 64 "
                     "videos (thop skips nn.MultiheadAttention); true: 2 x MACs with attention, all parameters.")
    return lines


def build(table: str, results: str | Path, config_path: str | Path, tables_path: str | Path,
          seeds: list[int] | None = None, data: str | None = None,
          variants_file: str | None = None) -> tuple[str, pd.DataFrame]:
    """The markdown text and the CSV frame of one table."""
    results = Path(results)
    config = _read_yaml(Path(config_path), "config")
    spec = load_table_spec(tables_path, table, variants_file)
    seeds = list(seeds if seeds else config.get("seeds") or [])
    if not seeds:
        raise AvvpError(f"{config_path}: no seeds (set `seeds:` or pass --seeds)")
    with_costs = bool(spec.get("extra"))
    rows = collect(spec, results, seeds, with_costs)
    names = list(dict.fromkeys([r.variant for r in rows] + [r.base for r in rows if r.base]))
    runs = load_runs_info(results, names, seeds)
    frame = markdown_frame(rows, spec["columns"], with_costs)
    text = "\n".join(header(table, spec, config, seeds, data, runs, variants_file)
                     + [frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True)]
                     + legend(spec, rows, seeds, with_costs)) + "\n"
    return text, csv_frame(table, rows, spec["columns"], seeds, with_costs)


def run(args) -> None:
    out = Path(args.out)
    if out.suffix != ".md":
        raise AvvpError(f"{out}: --out must end in .md (the .csv is written beside it)")
    text, frame = build(args.table, args.results, args.config, args.tables, args.seeds, args.data)
    # CSV first: the .md is the workflow's target, so it appears only once both are complete.
    write_text(out.with_suffix(".csv"), frame.to_csv(index=False))
    write_text(out, text)
