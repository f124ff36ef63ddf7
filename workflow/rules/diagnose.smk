# Diagnostics beyond the ten numbers (issue 10): per-class F, modality leak, class co-occurrence and the
# refinement's label quality, for every row of Table 2 over all seeds. See avvp/reporting/diagnose.py.

# The files of results/diagnostics/ (avvp.paths.DIAGNOSTICS: what `avvp diagnose` writes), all in the HTML report
# (captions: workflow/report/diagnostic.rst).
DIAGNOSTICS = list(paths.DIAGNOSTICS.values())
DIAGNOSTICS_DIR = str(paths.diagnostics_dir())
DIAGNOSTICS_FILES = [os.path.join(DIAGNOSTICS_DIR, name) for name in DIAGNOSTICS]  # rule all asks for them too
DIAGNOSED_TABLE = paths.DIAGNOSED_TABLE


localrules:
    diagnostics,


rule diagnostics:
    """The diagnostics of Table 2's rows: `snakemake diagnostics`."""
    input:
        DIAGNOSTICS_FILES,


rule diagnose:
    """Per-class scores, modality leak, co-occurrence and label quality of Table 2's rows (mean over seeds)."""
    input:
        predictions=[
            str(paths.predictions_npz(paths.run_dir(n, s), "test"))
            for n in table_variants(DIAGNOSED_TABLE)
            for s in SEEDS
        ],
        refine=[str(paths.refine_summary(s)) for s in SEEDS],
        tables=TABLES_FILES,
        manifest=MANIFEST,
    output:
        **{
            name.replace(".", "_"): report(
                os.path.join(DIAGNOSTICS_DIR, name),
                caption="../report/diagnostic.rst",
                category="Diagnostics",
                labels={"diagnostic": name},
            )
            for name in DIAGNOSTICS
        },
    params:
        seeds=" ".join(map(str, SEEDS)),
        out=lambda wildcards, output: os.path.dirname(output[0]),
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),  # RESULTS/diagnostics/X
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        sheets=SHEET_ARGS,
    log:
        str(paths.log_file("diagnose", DIAGNOSED_TABLE)),
    benchmark:
        str(paths.benchmark_file("diagnose", DIAGNOSED_TABLE))
    localrule: True
    conda:
        "../envs/avvp.yaml"
    shell:
        "avvp diagnose --results {params.results:q} {params.sheets} --table "
        + DIAGNOSED_TABLE
        + " --data {params.data:q} --seeds {params.seeds} --out {params.out:q} > {log} 2>&1"
