# Training: MA's label refinement (per seed), every row (per variant and seed), evaluation on val and test.
# Resuming: `avvp train` continues from RUN/last.pt when given the same --out. Only done.json (written last) is
# an output: Snakemake deletes a job's outputs before rerunning it, and a resumed run needs its last.pt and,
# when the best epoch came before the interruption, its best.pt.


# `tracking: tensorboard`: every training job also writes TensorBoard scalars (avvp/training/tracking.py). In the
# command, not a param: turning it on or off must not rerun a finished run (params is a rerun trigger).
TRACKING_ARG = f" --tensorboard {paths.tensorboard_root()}" if config["tracking"] == "tensorboard" else ""


rule refine:
    """MA steps 1-2: the modality-aware refined labels every `labels: refined` row trains on."""
    input:
        manifest=MANIFEST,
    output:
        labels=str(paths.refined_labels("{seed}")),
        summary=str(paths.refine_summary("{seed}")),
    params:
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.labels),
        # The refine row (MA's step 1) as resolved: editing it in variants.yaml refines again (trigger `params`).
        spec=variant_key(avvp_variants.slug(paths.REFINE_ROW)),
        sheets=VARIANTS_ARGS,
        epochs=refine_epochs_arg(),
        device=config["device"],
        precision=config["precision"],
        gpu_env=GPU_ENV,
        graphs=GRAPHS_ARG,
    log:
        str(paths.log_file("refine", "seed{seed}")),
    benchmark:
        str(paths.benchmark_file("refine", "seed{seed}"))
    threads: config["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: (16000 if LARGE else 4000) * attempt,
        runtime=240 if LARGE else 60,
        gpu=GPUS,
        **SLURM,
    conda:
        "../envs/avvp.yaml"
    shell:
        "{params.gpu_env}avvp refine --data {params.data:q} --seed {wildcards.seed} --out {params.out:q} {params.epochs}"
        " --device {params.device} --precision {params.precision} {params.sheets}{params.graphs} --threads {threads}"
        " > {log} 2>&1"


rule train:
    """One row of the paper with one seed."""
    input:
        unpack(train_inputs),
    output:
        done=str(paths.done_json(paths.run_folder("{slug}", "{seed}"))),
    params:
        variant=lambda wildcards: NAME[wildcards.slug],
        # The row's resolved entry: editing this row in variants.yaml retrains this row only (trigger `params`).
        spec=lambda wildcards: variant_key(wildcards.slug),
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.done),
        labels=label_args,
        epochs=epochs_arg(),
        lr_scale=lr_scale_arg,
        device=config["device"],
        precision=config["precision"],
        protocol=config["protocol"],
        sheets=VARIANTS_ARGS,
        gpu_env=GPU_ENV,
        graphs=GRAPHS_ARG,
    log:
        str(paths.log_file("train", "{slug}/seed{seed}")),
    benchmark:
        str(paths.benchmark_file("train", "{slug}/seed{seed}"))
    threads: config["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: (16000 if LARGE else 4000) * attempt,
        runtime=600 if LARGE else 120,
        gpu=GPUS,
        **SLURM,
    conda:
        "../envs/avvp.yaml"
    shell:
        "{params.gpu_env}avvp train --variant {params.variant:q} --seed {wildcards.seed} --data {params.data:q}"
        " --out {params.out:q} {params.labels} {params.epochs} {params.lr_scale} --device {params.device}"
        " --precision {params.precision} --protocol {params.protocol} {params.sheets}{params.graphs}"
        + TRACKING_ARG
        + " --threads {threads} > {log} 2>&1"


rule evaluate:
    """metrics.json and predictions.npz of a trained run on one split."""
    input:
        unpack(thresholds_input),  # a tuned row's thresholds file (workflow/rules/thresholds.smk)
        done=str(paths.done_json(paths.run_folder("{slug}", "{seed}"))),
        manifest=MANIFEST,
    output:
        metrics=str(paths.metrics_json(paths.run_folder("{slug}", "{seed}"), "{split}")),
        predictions=str(paths.predictions_npz(paths.run_folder("{slug}", "{seed}"), "{split}")),
        # Both gatings' per-video scores and numbers: `avvp table` reads them.
        per_video=str(paths.per_video_npz(paths.run_folder("{slug}", "{seed}"), "{split}")),
        by_gating=str(paths.by_gating_json(paths.run_folder("{slug}", "{seed}"), "{split}")),
    params:
        run=lambda wildcards, input: os.path.dirname(input.done),
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
        device=config["device"],
        gpu_env=GPU_ENV,
    log:
        str(paths.log_file("evaluate", "{slug}/seed{seed}-{split}")),
    benchmark:
        str(paths.benchmark_file("evaluate", "{slug}/seed{seed}-{split}"))
    threads: config["threads"]
    resources:
        mem_mb=8000 if LARGE else 2000,
        runtime=60 if LARGE else 15,
        gpu=GPUS,
        **SLURM,
    conda:
        "../envs/avvp.yaml"
    shell:
        "{params.gpu_env}avvp evaluate --run {params.run:q} --split {wildcards.split} --data {params.data:q} --out {params.out:q}"
        " --device {params.device} --threads {threads} > {log} 2>&1"
