# The inputs of the reporting rules that depend on what is on disk (functions only: workflow/rules/tables.smk has
# the rules): the runs that exist (rule runs) and the report's files that exist (rule report_files).

import glob


def existing_runs():
    """The run folders of known rows that hold a done.json now (the runs that exist, whichever target made them)."""
    found = glob.glob(str(paths.done_json(paths.run_folder("*", "*"))))
    runs = [os.path.dirname(f) for f in found]
    return sorted(r for r in runs if os.path.basename(os.path.dirname(r)) in NAME and paths.seed_of(r) is not None)


def runs_inputs(wildcards):
    """Every existing run's done.json and both splits' numbers (an unevaluated split is evaluated first)."""
    return [str(f) for run in existing_runs()
            for f in (paths.done_json(run), paths.by_gating_json(run, "val"), paths.by_gating_json(run, "test"))]


def report_inputs(wildcards):
    """What `snakemake --report results/report.html report_files` shows: every table whose outputs are all on disk,
    every figure, the diagnostics when complete, runs.csv; nothing is made for it."""
    tables = [
        str(paths.table_md(t))
        for t in sorted(TABLES)
        if all(os.path.exists(f) for f in (paths.table_md(t), paths.table_csv(t), paths.table_html(t), paths.curves_png(t)))
    ]
    figures = [str(paths.figure_png(k)) for k in FIGURES if os.path.exists(paths.figure_png(k))]
    diagnostics = DIAGNOSTICS_FILES if all(os.path.exists(f) for f in DIAGNOSTICS_FILES) else []
    runs = [str(paths.runs_csv())] if os.path.exists(paths.runs_csv()) else []
    return tables + figures + diagnostics + runs
