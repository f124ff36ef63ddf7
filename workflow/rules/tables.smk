# Reporting: parameters and FLOPs (Table 4), the tables of the tables sheets (with their training curves and
# HTML pages), the figures, results/runs.csv, and the report's target of what exists (report_files).


include: "tables_inputs.smk"


# A table's files in the report: (output name, path, caption, what it is).
TABLE_FILES = [("md", paths.table_md, "table", "markdown"), ("csv", paths.table_csv, "table", "csv"),
               ("html", paths.table_html, "table", "table and curves"),
               ("curves", paths.curves_png, "curves", "training curves")]
# slug -> row name of every row a profile may be asked for (a `runs_of` row too: its model is its runs').
PROFILED = {paths.slug(n): n for n in avvp_variants.names(VARIANTS_FILES)}


rule profile:
    """Parameters and FLOPs of one row, in the paper's thop convention and truly counted."""
    output:
        str(paths.profile_file("{slug}")),
    params:
        variant=lambda wildcards: PROFILED[wildcards.slug],
        sheets=VARIANTS_ARGS,
    log:
        str(paths.log_file("profile", "{slug}")),
    benchmark:
        str(paths.benchmark_file("profile", "{slug}"))
    resources:
        mem_mb=4000,
        runtime=15,
        **SLURM,
    conda:
        "../envs/avvp.yaml"
    shell:
        "avvp profile --variant {params.variant:q} {params.sheets} --out {output} > {log} 2>&1"


rule table:
    """One of the paper's tables: our mean ± std over seeds beside the published numbers; its rows' training curves,
    and the table with its curves as one HTML page (what the report shows)."""
    input:
        unpack(table_inputs),
    output:
        **{
            name: report(
                str(path("{table}")),
                caption=f"../report/{caption}.rst",
                category="Tables",
                subcategory="{table}",
                labels={"table": "{table}", "format": what},
            )
            for name, path, caption, what in TABLE_FILES
        },
    params:
        results=lambda wildcards, input: os.path.dirname(input.config),
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        seeds=" ".join(map(str, SEEDS)),
        sheets=SHEET_ARGS,
    log:
        str(paths.log_file("table", "{table}")),
    benchmark:
        str(paths.benchmark_file("table", "{table}"))
    localrule: True
    conda:
        "../envs/avvp.yaml"
    shell:
        "avvp table --table {wildcards.table} --results {params.results:q} --config {input.config:q}"
        " {params.sheets} --data {params.data:q} --seeds {params.seeds} --curves {output.curves:q}"
        " --html {output.html:q} --out {output.md:q} > {log} 2>&1"


rule runs:
    """results/runs.csv: one line per row, seed, split and gating of every run that exists (`snakemake results/runs.csv`)."""
    input:
        runs_inputs,
    output:
        report(str(paths.runs_csv()), caption="../report/runs.rst", category="Runs"),
    params:
        results=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        str(paths.log_file("runs")),
    localrule: True
    conda:
        "../envs/avvp.yaml"
    shell:
        "avvp runs --results {params.results:q} --out {output:q} > {log} 2>&1"


rule report_files:
    """The target of the report after any command: `snakemake --report results/report.html report_files`."""
    input:
        report_inputs,
    localrule: True


rule figure:
    """One of the paper's figures (timeline: Fig. 2 style, tsne: Figs. 3-4 style, spread: seeds of Table 2)."""
    input:
        runs=figure_inputs,
        tables=TABLES_FILES,
    output:
        report(
            str(paths.figure_png("{kind}")),
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{kind}"},
        ),
    params:
        methods=lambda wildcards: quoted(figure_methods(wildcards.kind)),
        seeds=lambda wildcards: " ".join(map(str, figure_seeds(wildcards.kind))),
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),  # RESULTS/figures/X.png
        sheets=SHEET_ARGS,
    log:
        str(paths.log_file("figure", "{kind}")),
    benchmark:
        str(paths.benchmark_file("figure", "{kind}"))
    resources:
        mem_mb=4000,
        runtime=30,
        **SLURM,
    conda:
        "../envs/avvp.yaml"
    shell:
        "avvp figure --kind {wildcards.kind} --results {params.results:q} {params.sheets} --methods {params.methods}"
        " --seeds {params.seeds} --out {output} > {log} 2>&1"
