# JoMoLD's stages 1 and 2 (docs/protocol.md#jomold), per seed, each one file on disk; stage 3 is `rule train` of
# every `labels: jomold` row, whose input is stage 2's file (avvp/training/labels.py: the source's `ratios` file).
#   noise_estimator  avvp train (the row paths.ESTIMATOR_ROW) -> results/jomold/seed<S>/estimator/done.json
#   noise_ratios     avvp noise-ratios                       -> results/jomold/seed<S>/noise_ratios.json
# Resuming: the estimator is a training run (its last.pt and best.pt survive a kill, done.json is the only
# output); the ratios file is written atomically from the estimator's best.pt. Their input functions are in
# common.smk (the lint: no functions beside rules).

rule noise_estimator:
    """JoMoLD's stage 1 for one seed: the noise estimator (cross attention off, weights 1/1/1/1, its selection)."""
    input:
        manifest=MANIFEST,
    output:
        done=str(paths.done_json(paths.estimator_folder("{seed}"))),
    params:
        variant=paths.ESTIMATOR_ROW,
        # The estimator row as resolved: editing it in variants.yaml retrains it (trigger `params`).
        spec=variant_key(ESTIMATOR_SLUG),
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.done),
        epochs=epochs_arg(),
        lr_scale=estimator_lr_scale(),
        device=config["device"],
        precision=config["precision"],
        protocol=config["protocol"],
        sheets=VARIANTS_ARGS,
        gpu_env=GPU_ENV,
        graphs=GRAPHS_ARG,
    log:
        str(paths.log_file("noise_estimator", "seed{seed}")),
    benchmark:
        str(paths.benchmark_file("noise_estimator", "seed{seed}"))
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
        " --out {params.out:q} {params.epochs} {params.lr_scale} --device {params.device}"
        " --precision {params.precision} --protocol {params.protocol} {params.sheets}{params.graphs}"
        " --threads {threads} > {log} 2>&1"


rule noise_ratios:
    """JoMoLD's stage 2 for one seed: the 2 x 25 per-class noise ratios (and their counts) of the estimator."""
    input:
        done=str(paths.done_json(paths.estimator_folder("{seed}"))),
        manifest=MANIFEST,
    output:
        ratios=str(paths.noise_ratios("{seed}")),
    params:
        run=lambda wildcards, input: os.path.dirname(input.done),
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        device=config["device"],
        precision=config["precision"],
        gpu_env=GPU_ENV,
    log:
        str(paths.log_file("noise_ratios", "seed{seed}")),
    benchmark:
        str(paths.benchmark_file("noise_ratios", "seed{seed}"))
    threads: config["threads"]
    resources:
        mem_mb=8000 if LARGE else 2000,
        runtime=30 if LARGE else 10,
        gpu=GPUS,
        **SLURM,
    conda:
        "../envs/avvp.yaml"
    shell:
        "{params.gpu_env}avvp noise-ratios --run {params.run:q} --data {params.data:q} --seed {wildcards.seed}"
        " --out {output.ratios:q} --device {params.device} --precision {params.precision} --threads {threads}"
        " > {log} 2>&1"


localrules:
    denoise_diagnostics,


rule denoise_diagnostics:
    """The denoising's label quality of every JoMoLD-style row and seed: `snakemake denoise_diagnostics`."""
    input:
        [str(paths.denoise_quality(avvp_variants.slug(n), s)) for n in denoised_rows() for s in SEEDS],


rule denoise_quality:
    """A `labels: jomold` run's removals (a pass over each split, full ratios) scored as MA's refinement."""
    input:
        unpack(denoise_quality_inputs),
    output:
        str(paths.denoise_quality("{slug}", "{seed}")),
    params:
        run=lambda wildcards, input: os.path.dirname(input.done),
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        device=config["device"],
        precision=config["precision"],
        gpu_env=GPU_ENV,
    log:
        str(paths.log_file("denoise_quality", "{slug}/seed{seed}")),
    benchmark:
        str(paths.benchmark_file("denoise_quality", "{slug}/seed{seed}"))
    threads: config["threads"]
    resources:
        mem_mb=8000 if LARGE else 2000,
        runtime=30 if LARGE else 10,
        gpu=GPUS,
        **SLURM,
    conda:
        "../envs/avvp.yaml"
    shell:
        "{params.gpu_env}avvp denoise-quality --run {params.run:q} --ratios {input.ratios:q} --data {params.data:q}"
        " --seed {wildcards.seed} --out {output:q} --device {params.device} --precision {params.precision}"
        " --threads {threads} > {log} 2>&1"
