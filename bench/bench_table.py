"""Time `avvp table` with bootstrap intervals: 22 rows x 3 seeds over 1,200 test videos (issue 9).

Writes fake evaluated runs (per_video.npz, metrics_by_gating.json, metrics.json, as `avvp evaluate` does) with
numpy into a temporary folder, a 22-row table spec over the known variants, then times `tables.build`
(reading every file, the intervals and both paired tests of every row).

    .venv/bin/python bench/bench_table.py [--rows 22] [--seeds 3] [--videos 1200] [--resamples 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from avvp import paths, sheets, variants
from avvp.evaluation import metrics, stats
from avvp.reporting import tables


def _numbers(x: np.ndarray) -> dict:
    out = {"segment": {}, "event": {}}
    for i, c in enumerate(metrics.COLUMNS):
        level, kind = c.split(".")
        out[level][kind] = 100 * float(x[:, i].mean())
    return out


def fake_runs(results: Path, names: list[str], seeds: int, videos: int) -> None:
    rng = np.random.default_rng(0)
    files = np.array([f"vid{i:05d}_0_10" for i in range(videos)])
    for name in names:
        own = variants.get(name).gating
        for seed in range(seeds):
            run = paths.run_folder(paths.slug(name), seed, results)
            paths.metrics_json(run, "test").parent.mkdir(parents=True)
            by = {g: rng.uniform(0, 1, size=(videos, len(metrics.COLUMNS))) for g in ("han", "ma")}
            np.savez_compressed(paths.per_video_npz(run, "test"), filenames=files, columns=np.array(metrics.COLUMNS),
                                own_gating=np.array(own), **by)
            numbers = {g: _numbers(x) for g, x in by.items()}
            paths.by_gating_json(run, "test").write_text(json.dumps({"own": own, **numbers}))
            paths.metrics_json(run, "test").write_text(json.dumps(numbers[own]))


def table_spec(tmp: Path, names: list[str]) -> tuple[Path, Path]:
    # Each row's base: the first row (HAN), or MA for the rows that gate differently, so both paths are timed.
    base = {n: ("MA" if n != "MA" and variants.get(n).gating == "han" and n.startswith("MA") else "HAN")
            for n in names}
    rows = [{"variant": n, "published": None, "base": None if n == "HAN" else base[n]} for n in names]
    spec = {"title": "bench", "source": "Table 9", "columns": list(metrics.COLUMNS), "rows": rows}
    tables_file, config = tmp / "tables.yaml", tmp / "config.yaml"
    tables_file.write_text(yaml.safe_dump({"source": "bench", "tables": {"table2": spec}}))
    config.write_text(yaml.safe_dump({"dataset": {"kind": "synthetic"}, "seeds": [0]}))
    return tables_file, config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=22)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--videos", type=int, default=1200)
    ap.add_argument("--resamples", type=int, default=stats.N_RESAMPLES)
    args = ap.parse_args()
    known = variants.names()
    names = ["HAN", "MA"] + [n for n in known if n not in ("HAN", "MA")]
    names = (names * (args.rows // len(names) + 1))[:args.rows]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fake_runs(tmp / "results", list(dict.fromkeys(names)), args.seeds, args.videos)
        tables_file, config = table_spec(tmp, names)
        start = time.perf_counter()
        spec = sheets.table("table2", tables_file)
        rows = tables.collect(spec, tmp / "results", list(range(args.seeds)), False, n_resamples=args.resamples)
        collected = time.perf_counter() - start
        tables.build("table2", tmp / "results", config, tables_file, seeds=list(range(args.seeds)))
        total = time.perf_counter() - start - collected
    print(f"{len(rows)} rows x {args.seeds} seeds x {args.videos} videos x {len(metrics.COLUMNS)} numbers, "
          f"{args.resamples} resamples: collect (read + intervals + both tests) {collected:.2f} s; "
          f"whole `avvp table` build {total:.2f} s")


if __name__ == "__main__":
    main()
