# Data: the synthetic dataset (default), packing into contiguous arrays, the annotation-version check.


rule synthesize:
    """A synthetic LLP dataset in the official layout (only for `dataset: {kind: synthetic}`)."""
    output:
        directory(str(paths.synthetic_dir("{preset}-s{dseed}"))),
    log:
        str(paths.log_file("synthesize", "{preset}-s{dseed}")),
    benchmark:
        str(paths.benchmark_file("synthesize", "{preset}-s{dseed}"))
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
        manifest=str(paths.manifest_json(paths.packed_folder("{packed}"))),
    params:
        raw=raw_folder,
        out=lambda wildcards, output: os.path.dirname(output.manifest),
    log:
        str(paths.log_file("pack", "{packed}")),
    benchmark:
        str(paths.benchmark_file("pack", "{packed}"))
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
        config=str(paths.config_yaml()),
    params:
        config={**config, "seeds": SEEDS},  # a changed config re-tabulates (rerun trigger `params`)
    log:
        str(paths.log_file("resolve_config")),
    localrule: True
    run:
        resolve_config(input.manifest, output.config, log[0])
