# Reporting: parameters and FLOPs (Table 4), the tables of the tables sheets, the figures.


rule profile:
    """Parameters and FLOPs of one row, in the paper's thop convention and truly counted."""
    output:
        str(paths.profile_file("{slug}")),
    params:
        variant=lambda wildcards: NAME[wildcards.slug],
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
    """One of the paper's tables: our mean ± std over seeds beside the published numbers."""
    input:
        unpack(table_inputs),
    output:
        md=report(
            str(paths.table_md("{table}")),
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}", "format": "markdown"},
        ),
        csv=report(
            str(paths.table_csv("{table}")),
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}", "format": "csv"},
        ),
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
        " {params.sheets} --data {params.data:q} --seeds {params.seeds} --out {output.md:q} > {log} 2>&1"


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
