# CMPAE's threshold search (docs/protocol.md#cmpae-gating): one small file per run, RUN/thresholds.json, that
# `avvp evaluate` reads for the `cmpae` gating. Searched for the runs of every row scored at CMPAE's rule: the
# rows whose own gating is `cmpae`, and every row of a table that sets `tune_thresholds: true` (so the table can
# say how much of each row's number is its decision rule). The search is one forward pass over validation and a
# few milliseconds of counting: a killed search leaves nothing (atomic write) and simply runs again.

# Its input functions (tuned_slugs, thresholds_input, snapshot_arg) are in workflow/rules/common.smk.

rule tune_thresholds:
    """The per-class visual thresholds of one run on validation (or the released / fixed values)."""
    input:
        done=str(paths.done_json(paths.run_folder("{slug}", "{seed}"))),
        manifest=MANIFEST,
    output:
        thresholds=str(paths.thresholds_json(paths.run_folder("{slug}", "{seed}"))),
    params:
        run=lambda wildcards, input: os.path.dirname(input.done),
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        snapshot=snapshot_arg,
        mode=config["thresholds"],
        device=config["device"],
        gpu_env=GPU_ENV,
    log:
        str(paths.log_file("thresholds", "{slug}/seed{seed}")),
    benchmark:
        str(paths.benchmark_file("thresholds", "{slug}/seed{seed}"))
    threads: config["threads"]
    resources:
        mem_mb=8000 if LARGE else 2000,
        runtime=30 if LARGE else 10,
        gpu=GPUS,
        **SLURM,
    conda:
        "../envs/avvp.yaml"
    shell:
        "{params.gpu_env}avvp thresholds --run {params.run:q} --data {params.data:q} --mode {params.mode}"
        " {params.snapshot} --device {params.device} --threads {threads} > {log} 2>&1"
