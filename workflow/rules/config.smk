# Reading the config: values given with `--config` arrive as strings when nested (Snakemake parses them with
# YAML's base loader: `seeds=[0]` is ['0'], `epochs=null` is 'null'), so they are re-read as YAML scalars before
# the schema sees them.

import os
import sys

import yaml
from snakemake.utils import validate


def typed(value):
    """`value` with every string that YAML reads as a number, boolean or null turned into that."""
    if isinstance(value, dict):
        return {key: typed(v) for key, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, str):
        try:
            scalar = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return scalar if scalar is None or isinstance(scalar, (int, float, bool)) else value
    return value


def config_error(config, schema_file):
    """The first thing wrong with `config` as one line (the key, the schema's message, its hint), or None."""
    import jsonschema

    with open(schema_file) as f:
        schema = yaml.safe_load(f)
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    hint = error.schema.get("hint") if isinstance(error.schema, dict) else None
    return f"config {where or '(top level)'}: {error.message}" + (f" ({hint})" if hint else "")


def validated(config, schema_file):
    """Snakemake's validate (which also fills in the defaults), after saying what is wrong in one line and
    stopping before any job: Snakemake's own report of a schema error is a dozen lines of schema dump."""
    schema_file = os.path.join(os.path.dirname(workflow.main_snakefile), schema_file)
    error = config_error(config, schema_file)
    if error:
        print(f"Error: {error} [{os.path.relpath(schema_file)}]", file=sys.stderr)
        sys.exit(1)
    validate(config, schema_file)


def resolved_precision(config):
    """The config's precision, `auto` resolved on the machine that plans the jobs: bf16 on cuda, or on a CPU with
    native bf16; fp32 otherwise. (On SLURM the submitting host decides: set fp32 or bf16 when nodes differ.)"""
    if config["precision"] != "auto":
        return config["precision"]
    from avvp.machine import cpu_has_native_bf16

    precision = "bf16" if config["device"] == "cuda" or cpu_has_native_bf16() else "fp32"
    if precision == "fp32":
        print("precision auto: fp32 (this CPU has no native bf16, AVX512-BF16 or AMX; bf16 would be emulated, "
              "many times slower)", file=sys.stderr)
    return precision
