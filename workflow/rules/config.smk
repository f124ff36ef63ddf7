# Reading the config: values given with `--config` arrive as strings when nested (Snakemake parses them with
# YAML's base loader: `seeds=[0]` is ['0'], `epochs=null` is 'null'), so they are re-read as YAML scalars before
# the schema sees them.

import yaml


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
