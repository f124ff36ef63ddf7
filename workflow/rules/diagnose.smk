# Diagnostics beyond the ten numbers (issue 10): per-class F, modality leak, class co-occurrence and the
# refinement's label quality, for every row of Table 2 over all seeds. See avvp/diagnose.py.

# The files of results/diagnostics/, all in the HTML report (captions: workflow/report/diagnostic.rst).
DIAGNOSTICS = ["per_class_f.csv", "per_class_diff.png", "leak.csv", "leak.png", "cooccurrence.csv",
               "cooccurrence_matrices.csv", "cooccurrence.png", "refinement.csv", "refinement.png"]


rule diagnose:
    """Per-class scores, modality leak, co-occurrence and label quality of Table 2's rows (mean over seeds)."""
    input:
        predictions=[
            str(paths.predictions_npz(paths.run_dir(n, s), "test")) for n in table_variants("table2") for s in SEEDS
        ],
        refine=[str(paths.refine_summary(s)) for s in SEEDS],
        tables=TABLES_FILE,
    output:
        **{
            name.replace(".", "_"): report(
                f"results/diagnostics/{name}",
                caption="../report/diagnostic.rst",
                category="Diagnostics",
                labels={"diagnostic": name},
            )
            for name in DIAGNOSTICS
        },
    params:
        seeds=" ".join(map(str, SEEDS)),
    log:
        "results/logs/diagnose/table2.log",
    benchmark:
        "results/benchmarks/diagnose/table2.tsv"
    localrule: True
    conda:
        "../envs/avvp.yaml"
    shell:
        "avvp diagnose --results results --tables {input.tables:q} --table table2 --seeds {params.seeds}"
        " --out results/diagnostics > {log} 2>&1"
