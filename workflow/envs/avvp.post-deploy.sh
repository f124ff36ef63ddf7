#!/usr/bin/env bash
# Runs once in the new conda environment, from the working directory: install the avvp package of this checkout.
set -euo pipefail
[ -f pyproject.toml ] && [ -d avvp ] || { echo "avvp.post-deploy.sh: run Snakemake from the avvp checkout" >&2; exit 1; }
python -m pip install --no-deps --no-build-isolation -e .
