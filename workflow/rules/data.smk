# Data: the synthetic dataset (default), packing into contiguous arrays, the annotation-version check.

from avvp.data import pack as avvp_pack
from avvp.data import pins as avvp_pins
from avvp.data.synth import GENERATOR_VERSION

# The generator's identity, a rerun trigger (`params`) of synthesize and pack: a new version or new code of
# avvp/data/synth.py makes the data again, and everything downstream with it, even when the config is the same
# (the profiles' rerun-triggers leave code changes out, which would retrain every row). Comments do not count.
GENERATOR = {"version": GENERATOR_VERSION, "code": avvp_pins.generator_code_hash()}


rule synthesize:
    """A synthetic LLP dataset in the official layout (only for `dataset: {kind: synthetic}`)."""
    output:
        directory(str(paths.synthetic_dir("{preset}-s{dseed}"))),
    params:
        generator=GENERATOR,
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
        format=avvp_pack.FORMAT,  # a new manifest layout packs again
        generator=lambda wildcards: None if wildcards.packed == "llp" else GENERATOR,
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
