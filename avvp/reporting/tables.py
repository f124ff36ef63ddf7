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

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from avvp import models, outputs, paths, sheets
from avvp import variants as variants_mod
from avvp.errors import AvvpError
from avvp.evaluation import stats as video_stats
from avvp.evaluation.gatings import GATINGS
from avvp.io import git_commit, sha256_file, write_text
from avvp.reporting import column_label

# Significance marks against the base row (two-sided): the paired t-test over seeds, and the paired bootstrap
# over test videos (a distinct mark, so a reader can tell which source of chance a difference survives).
MARKS = [(0.01, "‡"), (0.05, "†")]
BOOT_MARKS = [(0.01, "**"), (0.05, "*")]
BOOT_SEED = 0       # the bootstrap's fixed seed: every row and comparison sees the same resampled videos

# Table 4's cost columns: (csv key, markdown label, profile field, scale).
COST_COLUMNS = [
    ("gflops_paper", "GFLOPs (paper conv.)", "paper_macs", 1e9),
    ("params_m_paper", "Params M (paper conv.)", "paper_params", 1e6),
    ("gflops_true", "GFLOPs (true, 2xMAC)", "true_flops", 1e9),
    ("params_m_true", "Params M (true)", "true_params", 1e6),
]
PUBLISHED_COSTS = {"gflops_paper": "gflops", "params_m_paper": "params"}


# --------------------------------------------------------------------------------------------- inputs

def load_video_scores(results: Path, row: variants_mod.Variant, seeds: list[int], gating: str,
                      columns: list[str]) -> video_stats.VideoScores:
    """Per-video test scores (seeds, videos, columns) in [0, 1] of a row under `gating`, from each of its runs'
    per_video.npz; videos in filename order, the same videos for every seed."""
    variant = row.name
    per_seed, files = [], None
    for seed in seeds:
        run = variants_mod.run_dir(row, seed, results)
        names, scores = outputs.per_video(run, gating, columns)
        order = np.argsort(names)
        if files is not None and not np.array_equal(names[order], files):
            raise AvvpError(f"{paths.per_video_npz(run, 'test')}: other test videos than seed {seeds[0]}'s run "
                            f"of '{variant}'")
        files = names[order]
        per_seed.append(scores[order])
    return video_stats.VideoScores(np.stack(per_seed), files, f"{variant} ({gating} gating)")


def load_profile(results: Path, variant: str) -> dict:
    prof = outputs.profile(variant, results)
    out = {}
    for key, _, field_name, scale in COST_COLUMNS:
        if field_name not in prof:
            raise AvvpError(f"{paths.profile_file(paths.slug(variant), results)}: no '{field_name}'")
        out[key] = float(prof[field_name]) / scale
    return out


# ------------------------------------------------------------------------------------------ statistics

def paired_ps(values: np.ndarray, base: np.ndarray) -> list:
    """Per column of (seeds, columns) arrays, the two-sided paired t-test over the same seeds, in one vectorised
    scipy call; None where it is undefined (fewer than two seeds, or the per-seed differences are constant so
    their variance is zero)."""
    diff = values - base
    if len(diff) < 2:
        return [None] * values.shape[1]
    constant = np.isclose(diff, diff[0], rtol=0.0, atol=1e-12).all(axis=0)
    with warnings.catch_warnings():
        # scipy warns of precision loss on the constant columns, which are reported as undefined anyway.
        warnings.simplefilter("ignore", RuntimeWarning)
        p = stats.ttest_rel(values, base, axis=0).pvalue
    return [None if c else float(x) for c, x in zip(constant, p)]


def mark(p: float | None, marks: list = MARKS) -> str:
    if p is None:
        return ""
    for level, sign in marks:
        if p < level:
            return sign
    return ""


@dataclass
class Row:
    variant: str
    label: str
    base: str | None
    published: list | None                  # per column: the paper's number or None; None: not in the paper
    values: np.ndarray                      # (seeds, columns), under the row's own gating (metrics.json)
    gating: str = "han"                     # the row's own gating, also the one its comparison uses
    p: list = field(default_factory=list)   # per column: t-test p-value against the base row, or None
    ci_low: np.ndarray | None = None        # per column: 95% bootstrap interval over test videos (%)
    ci_high: np.ndarray | None = None
    p_boot: list = field(default_factory=list)  # per column: paired bootstrap p-value against the base, or None
    costs: dict = field(default_factory=dict)
    published_costs: dict = field(default_factory=dict)
    published_source: str | None = None     # where this row's published numbers come from (a later method's)

    @property
    def mean(self) -> np.ndarray:
        return self.values.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        # Sample standard deviation over seeds (ddof=1); undefined for a single seed.
        if len(self.values) < 2:
            return np.full(self.values.shape[1], np.nan)
        return self.values.std(axis=0, ddof=1)


class RunScores:
    """Cached reads of the runs: seed numbers and per-video scores of a row under a gating. `rows`: the table's
    rows and bases, resolved (name -> Variant)."""

    def __init__(self, results: Path, seeds: list[int], columns: list[str], rows: dict):
        self.results, self.seeds, self.columns, self.rows = results, seeds, columns, rows
        self._values: dict = {}
        self._videos: dict = {}

    def gating(self, variant: str) -> str:
        return self.rows[variant].gating

    def values(self, variant: str, gating: str) -> np.ndarray:
        """(seeds, columns): metrics.json under the gating of the row that trained the runs, else
        metrics_by_gating.json."""
        key = (variant, gating)
        if key not in self._values:
            row = self.rows[variant]
            other = None if gating == row.runs_gating else gating    # metrics.json holds the runs' own gating
            self._values[key] = np.stack([outputs.numbers(variants_mod.run_dir(row, s, self.results), self.columns,
                                                          gating=other) for s in self.seeds])
        return self._values[key]

    def videos(self, variant: str, gating: str) -> video_stats.VideoScores:
        key = (variant, gating)
        if key not in self._videos:
            self._videos[key] = load_video_scores(self.results, self.rows[variant], self.seeds, gating, self.columns)
        return self._videos[key]


def compare_row(row: Row, runs: RunScores, n_resamples: int) -> None:
    """The row's interval over videos, and both paired tests against its base under the row's gating."""
    video = runs.videos(row.variant, row.gating)
    interval = video_stats.bootstrap_ci(video, n_resamples, seed=BOOT_SEED)
    # per_video.npz must rebuild metrics.json: a stale file would give intervals around other numbers.
    bad = np.flatnonzero(np.abs(interval.estimate - row.mean) > 1e-6)
    if bad.size:
        raise AvvpError(f"{video.name}: per_video.npz gives {runs.columns[bad[0]]} = {interval.estimate[bad[0]]:.4f}"
                        f" but metrics.json {row.mean[bad[0]]:.4f}; re-run `avvp evaluate` on its runs")
    row.ci_low, row.ci_high = interval.low, interval.high
    n = len(runs.columns)
    row.p, row.p_boot = [None] * n, [None] * n
    if row.base is None:
        return
    base = runs.values(row.base, row.gating)
    row.p = paired_ps(row.values, base)
    compared = video_stats.paired_bootstrap(video, runs.videos(row.base, row.gating), n_resamples, seed=BOOT_SEED)
    row.p_boot = [float(x) for x in compared.p]


def collect(spec: dict, resolved: dict, results: Path, seeds: list[int], with_costs: bool,
            n_resamples: int = video_stats.N_RESAMPLES) -> list[Row]:
    """Every row's per-seed numbers under its own gating, its interval over videos, paired tests against its
    base under the row's gating, and (table 4) its costs. `resolved`: the table's rows and bases by name."""
    runs = RunScores(results, seeds, spec["columns"], resolved)
    rows = []
    for r in spec["rows"]:
        gating = runs.gating(r["variant"])
        row = Row(variant=r["variant"], label=r.get("label", r["variant"]), base=r.get("base"),
                  published=None if r.get("published") is None else [sheets.published(r, c) for c in spec["columns"]],
                  values=runs.values(r["variant"], gating), gating=gating, published_source=r.get("published_source"))
        compare_row(row, runs, n_resamples)
        if with_costs:
            row.costs = load_profile(results, row.variant)
            row.published_costs = {k: r.get(v) for k, v in PUBLISHED_COSTS.items()}
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- header

def load_runs_info(results: Path, resolved: dict, seeds: list[int]) -> dict:
    """run.json of every run of these rows (where present): variant -> list of dicts."""
    info = {}
    for v, row in resolved.items():
        info[v] = []
        for s in seeds:
            run = variants_mod.run_dir(row, s, results)
            if paths.run_json(run).exists():
                info[v].append(outputs.run_info(run))
    return info


def find_manifest(data: str | None, runs: dict, config: dict) -> tuple[Path | None, dict | None]:
    """The packed dataset's manifest: --data first, then the runs' own `data`, then the config's default."""
    if data:
        path = paths.manifest_json(data)
        return path, outputs.read_json(path, f"make it with: avvp pack --data RAW --out {data}")
    candidates = [Path(r["data"]) for rs in runs.values() for r in rs if r.get("data")]
    default = paths.packed_dir(config.get("dataset") or {})
    if default is not None:
        candidates.append(default)
    for packed in candidates:
        path = paths.manifest_json(packed)
        if path.exists():
            return path, outputs.read_json(path, "")
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


def stacking_line(spec: dict, resolved: dict, runs: dict | None = None) -> str:
    """Which HAN stacking the multi-layer rows use (the released code re-reads the inputs:
    docs/protocol.md#han-stacking). The runs' own run.json `spec` wins over config/variants.yaml: it is what was
    trained."""
    parts = []
    for r in spec["rows"]:
        model = resolved[r["variant"]].model
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


def data_lines(manifest_path: Path | None, manifest: dict | None, ds: dict, synthetic: bool, runs: dict) -> list[str]:
    """What the numbers were computed on: the dataset, its annotation version and the packed copy's hash."""
    lines = []
    if synthetic:
        entry = (manifest or {}).get("synthetic")
        entry = entry if isinstance(entry, dict) else {}
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
    return lines


# run.json `environment` (avvp.training.tracking.environment): the fields a header names, in its words.
ENV_FIELDS = [("python", "python"), ("torch", "torch"), ("cuda", "CUDA"), ("cudnn", "cuDNN"),
              ("device_name", "device"),
              ("cpu_capability", "CPU kernels"), ("torch_threads", "torch threads"),
              ("deterministic", "deterministic kernels")]
NO_ENV = "unknown (run.json has no `environment`: trained before it was recorded)"


def env_key(info: dict) -> tuple | None:
    """A run's environment as a hashable tuple in ENV_FIELDS order; None when its run.json has none."""
    env = info.get("environment")
    return None if not isinstance(env, dict) else tuple(env.get(k) for k, _ in ENV_FIELDS)


def env_text(key: tuple | None) -> str:
    """'python 3.11.7, torch 2.13.0+cpu, CUDA none, cuDNN none, Intel Xeon (2 cores), CPU kernels AVX512,
    1 torch thread(s), deterministic kernels off' (a run recorded before cpu_capability: 'CPU kernels unknown')."""
    if key is None:
        return NO_ENV
    e = dict(zip([k for k, _ in ENV_FIELDS], key))
    return (f"python {e['python']}, torch {e['torch']}, CUDA {e['cuda'] or 'none'}, cuDNN {e['cudnn'] or 'none'}, "
            f"{e['device_name']}, CPU kernels {e['cpu_capability'] or 'unknown'}, "
            f"{e['torch_threads']} torch thread(s), "
            f"deterministic kernels {'on' if e['deterministic'] else 'off'}")


def env_differences(keys: set) -> str:
    """Which fields differ between environments: 'torch 2.13.0+cpu / 2.5.1+cu121'."""
    known = [k for k in keys if k is not None]
    parts = [f"{label} {' / '.join(sorted({str(k[i]) for k in known}))}"
             for i, (_, label) in enumerate(ENV_FIELDS) if len({k[i] for k in known}) > 1]
    if None in keys:
        parts.append("some runs without a recorded environment")
    return "; ".join(parts)


def environment_lines(spec: dict, runs: dict) -> list[str]:
    """The distinct environments the table's runs were trained in: one line when they agree; else one line
    each with its rows, and a WARNING per comparison (row vs base) whose runs differ."""
    keys = {v: [env_key(r) for r in rs] for v, rs in runs.items()}
    distinct = list(dict.fromkeys(k for ks in keys.values() for k in ks))
    if not distinct:
        return ["- Environment: unknown (no run.json)"]
    if len(distinct) == 1:
        return [f"- Environment: {env_text(distinct[0])} (all runs)"]
    lines = [f"- Environments: {len(distinct)} different ones among the runs"]
    for i, key in enumerate(distinct, 1):
        users = [f"{v} ({ks.count(key)}/{len(ks)} runs)" for v, ks in keys.items() if key in ks]
        lines.append(f"  - E{i}: {env_text(key)}: {', '.join(users)}")
    for r in spec["rows"]:
        both = set(keys.get(r["variant"], [])) | set(keys.get(r.get("base"), []))
        if r.get("base") and len(both) > 1:
            lines.append(f"- WARNING: {r.get('label', r['variant'])} vs {r['base']}: their runs were trained in "
                         f"{len(both)} different environments ({env_differences(both)}); the difference mixes "
                         "the method with the environment")
    return lines


def header(table: str, spec: dict, config: dict, seeds: list[int], data: str | None, runs: dict,
           resolved: dict) -> list[str]:
    manifest_path, manifest = find_manifest(data, runs, config)
    ds = config.get("dataset") or {}
    synthetic = bool((manifest or {}).get("synthetic")) or (manifest or {}).get("annotation_version") == "synthetic" \
        or (manifest is None and ds.get("kind") == "synthetic")
    lines = []
    if synthetic:
        lines.append("> **SYNTHETIC DATA: these numbers are NOT comparable with the paper's.** They test the "
                     "harness end to end; the 'paper' rows are shown only for reference.")
        lines.append("")
    lines.append(f"# {spec['source']} ({table}): {spec['title']}")
    lines.append("")
    lines += data_lines(manifest_path, manifest, ds, synthetic, runs)
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
    lines.append(f"- HAN stacking of the layer rows: {stacking_line(spec, resolved, runs)}")
    commits = sorted({r.get("git_commit") for rs in runs.values() for r in rs} - {None})
    runs_commit = f"; runs trained at {', '.join(commits)}" if commits else ""
    lines.append(f"- Code: git commit {git_commit()}{runs_commit}")
    lines += environment_lines(spec, runs)
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
            ours[lab] = ((_f(m) if np.isnan(s) else f"{m:.1f} ± {s:.1f}") + mark(row.p[j])
                         + mark(row.p_boot[j], BOOT_MARKS))
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
                "mark": mark(row.p[j]), "gating": row.gating,
                "ci_low": row.ci_low[j], "ci_high": row.ci_high[j],
                "p_boot_vs_base": "" if row.base is None else row.p_boot[j],
                "boot_mark": mark(row.p_boot[j], BOOT_MARKS),
            })
        for key, lab, _, _ in (COST_COLUMNS if with_costs else []):
            pub = row.published_costs.get(key)
            records.append({
                "table": table, "variant": row.variant, "label": row.label, "base": row.base,
                "metric": key, "column": lab, "n_seeds": None, "seeds": "", "values": "",
                "mean": row.costs[key], "std": None, "published": pub,
                "diff": None if pub is None else row.costs[key] - pub, "p_vs_base": "", "mark": "",
                "gating": "", "ci_low": None, "ci_high": None, "p_boot_vs_base": "", "boot_mark": "",
            })
    frame = pd.DataFrame.from_records(records)
    frame["n_seeds"] = frame["n_seeds"].astype("Int64")
    return frame


def _module_change(row: variants_mod.Variant, base: variants_mod.Variant) -> str:
    # The model spec carries the recipe's dropout: a recipe change is not a module change. A switch the base's
    # backbone or head does not have compares with its default (CM-Co's mode cm is HAN's head made CM-Co).
    default = {k: fragment["default"] for k, fragment in models.switches(row.model).items()}
    parts = [f"{k} {base.model.get(k, default[k])} → {v}" for k, v in row.model.items()
             if k != "dropout" and base.model.get(k, default[k]) != v]
    if row.losses != base.losses:
        parts.append(f"losses {'+'.join(base.losses) or 'none'} → {'+'.join(row.losses) or 'none'}")
    return "; ".join(parts)


def differences(row: variants_mod.Variant, base: variants_mod.Variant) -> tuple[list[str], list[str]]:
    """Which of modules (model spec + extra losses), labels, recipe and gating differ between two rows,
    computed from their Variants: (differ, each with base → row values; same)."""
    differ, same = [], []
    checks = [("modules", _module_change(row, base)),
              ("labels", row.labels != base.labels and f"{base.labels} → {row.labels}"),
              ("recipe", (row.recipe_name, row.recipe) != (base.recipe_name, base.recipe)
               and (f"{base.recipe_name} → {row.recipe_name}" if row.recipe_name != base.recipe_name
                    else f"{row.recipe_name}, other overrides")),
              ("gating", row.gating != base.gating and f"as scored: {base.gating} → {row.gating}")]
    for what, change in checks:
        (differ.append(f"{what} ({change})") if change else same.append(what))
    return differ, same


def _labels(rows: list[Row]) -> dict[str, str]:
    """variant -> the label of its first row (a base is named as it first appears, not by a later copy)."""
    label: dict[str, str] = {}
    for r in rows:
        label.setdefault(r.variant, r.label)
    return label


def comparison_lines(rows: list[Row], resolved: dict) -> list[str]:
    """One legend line per comparison: the gating both sides are tested under, and what differs."""
    label = _labels(rows)
    lines = []
    for r in rows:
        if r.base is None:
            continue
        differ, same = differences(resolved[r.variant], resolved[r.base])
        lines.append(f"- {r.label} vs {label.get(r.base, r.base)}, both under {GATINGS.get(r.gating).description}: "
                     f"differ in {', '.join(differ) or 'nothing'}; same {', '.join(same) or 'nothing'}.")
    return lines


def rows_line(rows: list[Row], resolved: dict) -> str:
    """The header's list of each row's (and base's) labels, recipe and gating."""
    names = dict.fromkeys([r.variant for r in rows] + [r.base for r in rows if r.base])
    parts = []
    for name in names:
        v = resolved[name]
        parts.append(f"{name}: {v.labels} / {v.recipe_name} / {v.gating}")
    return f"- Rows (labels / recipe / gating): {'; '.join(parts)}"


def legend(spec: dict, rows: list[Row], seeds: list[int], with_costs: bool, resolved: dict,
           n_resamples: int = video_stats.N_RESAMPLES) -> list[str]:
    label = _labels(rows)
    pairs = ", ".join(f"{r.label} vs {label.get(r.base, r.base)}" for r in rows if r.base)
    lines = [
        "",
        f"ours: mean ± sample std (ddof=1) over {len(seeds)} seed(s) of the test-split F-scores (%), each row "
        "under its own gating (as its authors scored it; header); "
        f"paper: {spec['source']} of {spec['source_paper']}; ours - paper: the difference of the means.",
        "† p < 0.05, ‡ p < 0.01: two-sided paired t-test (scipy.stats.ttest_rel) over the same seeds against "
        "the row's base (n/a, unmarked, with fewer than 2 seeds or constant differences)"
        + (f"; compared: {pairs}." if pairs else "."),
        f"* p < 0.05, ** p < 0.01: two-sided paired bootstrap over test videos against the row's base (the same "
        f"resampled videos for both, seeds averaged per video; centred test; {n_resamples} resamples, seed "
        f"{BOOT_SEED}). The CSV adds each number's 95% percentile bootstrap interval over videos (ci_low, ci_high).",
    ]
    if pairs:
        lines += ["", "Both tests compare row and base under ONE gating, the row's own:"]
        lines += comparison_lines(rows, resolved) + [""]
    sourced = [f"{r.label}: {r.published_source}" for r in rows if r.published is not None and r.published_source]
    if sourced:
        lines.append(f"Published numbers by row (where not {spec['source']}): {'; '.join(sourced)}.")
    extra = [r.label for r in rows if r.published is None]
    if extra:
        lines.append(f"Not in the paper (controls): {', '.join(extra)}.")
    if with_costs:
        lines.append("Paper conv.: thop multiply-accumulates / 1e9 and counted parameters / 1e6 over a batch of 64 "
                     "videos (thop skips nn.MultiheadAttention); true: 2 x MACs with attention, all parameters.")
    return lines


def assemble(table: str, results: str | Path, config_path: str | Path, tables_path: str | Path,
             seeds: list[int] | None = None, data: str | None = None, variants_file: str | None = None) -> dict:
    """The parts of one table: header lines, the markdown frame, legend lines, the CSV frame, the spec, seeds."""
    results = Path(results)
    config = sheets.read_yaml(config_path, "config")
    spec = sheets.table(table, tables_path, variants_file)
    resolved = variants_mod.resolve([r["variant"] for r in spec["rows"]]
                                    + [r["base"] for r in spec["rows"] if r.get("base")], variants_file)
    seeds = list(seeds if seeds else config.get("seeds") or [])
    if not seeds:
        raise AvvpError(f"{config_path}: no seeds (set `seeds:` or pass --seeds)")
    with_costs = bool(spec.get("extra"))
    rows = collect(spec, resolved, results, seeds, with_costs)
    runs = load_runs_info(results, resolved, seeds)
    head = header(table, spec, config, seeds, data, runs, resolved)
    head.insert(len(head) - 1, rows_line(rows, resolved))    # before the header's closing blank line
    return {"head": head, "frame": markdown_frame(rows, spec["columns"], with_costs),
            "legend": legend(spec, rows, seeds, with_costs, resolved),
            "csv": csv_frame(table, rows, spec["columns"], seeds, with_costs), "spec": spec, "seeds": seeds,
            "rows": resolved}


def build(table: str, results: str | Path, config_path: str | Path, tables_path: str | Path,
          seeds: list[int] | None = None, data: str | None = None,
          variants_file: str | None = None) -> tuple[str, pd.DataFrame]:
    """The markdown text and the CSV frame of one table."""
    parts = assemble(table, results, config_path, tables_path, seeds, data, variants_file)
    return markdown_text(parts), parts["csv"]


def markdown_text(parts: dict) -> str:
    table = parts["frame"].to_markdown(index=False, tablefmt="pipe", disable_numparse=True)
    return "\n".join(parts["head"] + [table] + parts["legend"]) + "\n"


def main(args) -> None:
    out = Path(args.out)
    if out.suffix != ".md":
        raise AvvpError(f"{out}: --out must end in .md (the .csv is written beside it)")
    for flag, path, suffix in (("--curves", args.curves, ".png"), ("--html", args.html, ".html")):
        if path and Path(path).suffix != suffix:
            raise AvvpError(f"{path}: {flag} must end in {suffix}")
    parts = assemble(args.table, args.results, args.config, args.tables, args.seeds, args.data, args.variants_file)
    if args.curves:   # before the files that show it
        from avvp.reporting import curves

        curves.table_curves(parts["spec"], parts["rows"], Path(args.results), parts["seeds"], Path(args.curves),
                            args.table)
    # CSV first: the .md is the workflow's target, so it appears only once all are complete.
    write_text(out.with_suffix(".csv"), parts["csv"].to_csv(index=False))
    if args.html:
        from avvp.reporting import page

        write_text(args.html, page.table_page(parts, args.curves))
    write_text(out, markdown_text(parts))
