# The inputs of the reporting rules that depend on what is on disk (functions only: workflow/rules/tables.smk has
# the rules): the runs that exist (rule runs) and the report's files that exist (rule report_files).

import glob


def existing_runs():
    """The run folders of known rows that hold a done.json now (the runs that exist, whichever target made them)."""
    found = glob.glob(str(paths.done_json(paths.run_folder("*", "*"))))
    runs = [os.path.dirname(f) for f in found]
    return sorted(r for r in runs if os.path.basename(os.path.dirname(r)) in NAME and paths.seed_of(r) is not None)


def requested_runs():
    """The run folders the tables asked for by the same command will make (`snakemake results/table2.md
    results/runs.csv`), the runs their label stages read included; none for `snakemake results/runs.csv` alone."""
    targets = set(workflow.dag_settings.targets)
    tables = [t for t in TABLES if "all" in targets or str(paths.table_md(t)) in targets]
    names = list(dict.fromkeys(n for t in tables for n in table_variants(t)))
    stages = [STAGES.get(s) for n in names for s in LABEL_SOURCES.get(row(n).labels).files.values()]
    names += [stage.row for stage in stages if stage.row is not None]
    return [str(run_dir(n, s)) for n in dict.fromkeys(names) for s in SEEDS]


def runs_inputs(wildcards):
    """Every run's done.json and both splits' numbers (an unevaluated split is evaluated first): the runs that
    exist, and those the same command makes for the tables it asks for (runs.csv then waits for them)."""
    runs = dict.fromkeys(existing_runs() + requested_runs())
    return [str(f) for run in runs
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
