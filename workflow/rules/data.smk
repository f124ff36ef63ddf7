# Data: the synthetic dataset (default), packing into contiguous arrays, the annotation-version check.


rule synthesize:
    """A synthetic LLP dataset in the official layout (only for `dataset: {kind: synthetic}`)."""
    output:
        directory("data/synthetic/{preset}-s{dseed}"),
    log:
        "results/logs/synthesize/{preset}-s{dseed}.log",
    benchmark:
        "results/benchmarks/synthesize/{preset}-s{dseed}.tsv"
    resources:
        mem_mb=8000 if LARGE else 2000,
        runtime=60 if LARGE else 15,
        **SLURM,
    conda:
        "../envs/avvp.yaml"
    shell:
        "avvp synth --preset {wildcards.preset} --seed {wildcards.dseed} --out {output} > {log} 2>&1"


rule pack:
    """Validate the LLP folder once (quirks counted in the manifest) and write contiguous arrays."""
    input:
        raw=raw_data,
    output:
        manifest="data/packed/{packed}/manifest.json",
    params:
        raw=raw_folder,
        out=lambda wildcards, output: os.path.dirname(output.manifest),
    log:
        "results/logs/pack/{packed}.log",
    benchmark:
        "results/benchmarks/pack/{packed}.tsv"
    resources:
        mem_mb=16000 if LARGE else 2000,
        runtime=120 if LARGE else 15,
        **SLURM,
    conda:
        "../envs/avvp.yaml"
    shell:
        "avvp pack --data {params.raw:q} --out {params.out:q} > {log} 2>&1"


rule resolve_config:
    """Stop when the packed annotations are not the version the config asks for; record the config as run."""
    input:
        manifest=MANIFEST,
    output:
        config="results/config.yaml",
    params:
        config={**config, "seeds": SEEDS},  # a changed config re-tabulates (rerun trigger `params`)
    log:
        "results/logs/resolve_config.log",
    localrule: True
    run:
        resolve_config(input.manifest, output.config, log[0])
