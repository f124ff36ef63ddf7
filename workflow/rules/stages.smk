# The generic rules, one per kind of stage (avvp/stages.py), each instantiated for every registered stage of its
# kind: the core's, a method's (avvp/methods/<paper>/) and a plugin's alike. Nothing here names a stage's method.
#   train       Train: one row with one seed -> results/runs/<slug>/seed<S>/done.json (every row, estimators and
#               label stages' rows included)
#   <stage>     SeedFile: a per-seed file made from the run of the stage's row, or from the packed data alone
#               (what a label source trains on)
#   <stage>     RunPass: a pass over one trained run (evaluate, a gating's per-run file, a diagnostic)
# A rule made in a loop gets its stage's values through `params` only: Snakemake evaluates a rule's shell string
# again when the job runs, when the loop variable names the last stage.
# Resuming: `avvp train` continues from RUN/last.pt when given the same --out. Only done.json (written last) is
# its output: Snakemake deletes a job's outputs before rerunning it, and a resumed run needs its last.pt and,
# when the best epoch came before the interruption, its best.pt. Every other stage writes atomically.


# `tracking: tensorboard`: every training job also writes TensorBoard scalars (avvp/training/tracking.py). In the
# command, not a param: turning it on or off must not rerun a finished run (params is a rerun trigger).
TRACKING_ARG = f" --tensorboard {paths.tensorboard_root()}" if config["tracking"] == "tensorboard" else ""
TRAIN = STAGES.get("train")


rule train:
    """One row with one seed."""
    input:
        unpack(train_inputs),
    output:
        done=TRAIN.output("done"),
    params:
        variant=lambda wildcards: NAME[wildcards.slug],
        # The row's resolved entry: editing this row in variants.yaml retrains this row only (trigger `params`).
        spec=lambda wildcards: variant_key(wildcards.slug),
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.done),
        labels=label_args,
        epochs=epochs_arg,
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
        runtime=minutes(TRAIN),
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


for _stage in SEED_FILES:

    rule:
        name:
            _stage.rule
        input:
            unpack(seed_file_inputs(_stage)),
        output:
            **{name: _stage.output(name) for name in _stage.outputs},
        params:
            command=_stage.command,
            run=lambda wildcards, input: f" --run {shlex.quote(os.path.dirname(input.done))}" if "done" in input.keys() else "",
            data=lambda wildcards, input: os.path.dirname(input.manifest),
            out=lambda wildcards, output, stage=_stage: out_path(stage, wildcards, output),
            options=f" {_stage.args(config)}" if _stage.args and _stage.args(config) else "",
            precision=f" --precision {config['precision']}" if _stage.precision else "",
            device=config["device"],
            gpu_env=GPU_ENV,
        log:
            str(paths.log_file(_stage.rule, "seed{seed}")),
        benchmark:
            str(paths.benchmark_file(_stage.rule, "seed{seed}"))
        threads: config["threads"]
        resources:
            **pass_resources(_stage),
        conda:
            "../envs/avvp.yaml"
        shell:
            "{params.gpu_env}avvp {params.command}{params.run} --data {params.data:q} --seed {wildcards.seed}"
            " --out {params.out:q}{params.options} --device {params.device}{params.precision}"
            " --threads {threads} > {log} 2>&1"


for _stage in RUN_PASSES:
    _job = "{slug}/seed{seed}" + "".join(f"-{{{w}}}" for w in _stage.wildcards)

    rule:
        name:
            _stage.rule
        input:
            unpack(pass_inputs(_stage)),
        output:
            **{name: _stage.output(name) for name in _stage.outputs},
        params:
            command=_stage.command,
            run=lambda wildcards, input: os.path.dirname(input.done),
            data=lambda wildcards, input: os.path.dirname(input.manifest),
            own=lambda wildcards, stage=_stage: "".join(f" --{w} {wildcards[w]}" for w in stage.wildcards),
            seed=lambda wildcards, stage=_stage: f" --seed {wildcards.seed}" if stage.seed else "",
            out=lambda wildcards, output, stage=_stage: f" --out {shlex.quote(out_path(stage, wildcards, output))}"
            if stage.out
            else "",
            labels=lambda wildcards, input, stage=_stage: "".join(
                f" --{avvp_stages.option_flag(f)} {shlex.quote(input[f])}" for f in stage.label_files
            ),
            options=pass_options(_stage),
            precision=f" --precision {config['precision']}" if _stage.precision else "",
            device=config["device"],
            gpu_env=GPU_ENV,
        log:
            str(paths.log_file(_stage.rule, _job)),
        benchmark:
            str(paths.benchmark_file(_stage.rule, _job))
        threads: config["threads"]
        resources:
            **pass_resources(_stage),
        conda:
            "../envs/avvp.yaml"
        shell:
            "{params.gpu_env}avvp {params.command} --run {params.run:q} --data {params.data:q}{params.own}{params.seed}"
            "{params.out}{params.labels} {params.options} --device {params.device}{params.precision}"
            " --threads {threads} > {log} 2>&1"

    if _stage.target:

        rule:
            name:
                _stage.target
            input:
                target_files(_stage),
            localrule: True
