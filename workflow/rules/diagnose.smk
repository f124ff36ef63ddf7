# Diagnostics beyond the ten numbers: per-class F, modality leak, class co-occurrence and the label quality of the
# rows' label stages, for every row of Table 2 over all seeds. See avvp/reporting/diagnose.py.


# The files of results/diagnostics/ (the diagnose stage's: avvp/stages.py DIAGNOSTICS), all in the HTML report
# (captions: workflow/report/diagnostic.rst).
DIAGNOSE = STAGES.get("diagnose")
DIAGNOSTICS = list(avvp_stages.DIAGNOSTICS.values())
DIAGNOSTICS_DIR = str(paths.diagnostics_dir())
DIAGNOSTICS_FILES = [DIAGNOSE.output(name) for name in DIAGNOSE.outputs]  # rule all asks for them too
DIAGNOSED_TABLE = avvp_stages.DIAGNOSED_TABLE
# The label stages of the diagnosed rows that keep their label quality: their file of each seed.
QUALITY_FILES = [str(avvp_stages.quality_file(stage, s))
                 for stage in avvp_stages.quality_stages([row(n) for n in table_variants(DIAGNOSED_TABLE)])
                 for s in SEEDS]


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
            str(paths.predictions_npz(run_dir(n, s), "test")) for n in table_variants(DIAGNOSED_TABLE) for s in SEEDS
        ],
        quality=QUALITY_FILES,
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
