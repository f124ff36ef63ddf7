#!/usr/bin/env bash
# Behaviour fingerprint for refactors: run it before and after a change that must not change results, and diff.
# Tables 1-5 on the tiny preset (seed 0, 2 epochs) through the workflow, with the code of REPO: every run's
# metrics.json, metrics_by_gating.json and per_video.npz, every thresholds file, every per-seed label file (MA's
# refined labels, JoMoLD's noise ratios) and every table's CSV, hashed by what each is, not where it lies
# (bench/fingerprint_hash.py), so a layout change is no difference.
# Usage: bash bench/fingerprint.sh REPO OUT   (REPO: a checkout, e.g. a git worktree of the old commit; it runs
# with this checkout's .venv and REPO's code first on PYTHONPATH)     Then: diff OLD/fingerprint.txt NEW/fingerprint.txt
# TABLES="table5" (default: tables 1-5) and EXTRA="precision=fp32" (more --config values) narrow or set the run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$1" && pwd); out=$2
py=$here/.venv/bin/python
rm -rf "$out"; mkdir -p "$out/wf"
for n in Snakefile workflow config profiles; do cp -r "$repo/$n" "$out/wf/"; done
cd "$out/wf"
export PYTHONPATH=$repo
"$py" -c "import avvp, sys; sys.exit(0 if avvp.__file__.startswith('$repo') else 'avvp not imported from $repo')"
targets=$(for t in ${TABLES:-table1 table2 table3 table4 table5}; do printf 'results/%s.md ' "$t"; done)
# shellcheck disable=SC2086  # EXTRA and the targets are word lists
/usr/bin/time -f "%e s wall" "$py" -m snakemake --cores 2 --config 'dataset={preset: tiny}' 'seeds=[0]' epochs=2 \
  ${EXTRA:-} -- $targets > "$out/snakemake.log" 2>&1
"$py" "$here/bench/fingerprint_hash.py" results > "$out/fingerprint.txt"
wc -l "$out/fingerprint.txt"; sha256sum "$out/fingerprint.txt" | cut -c1-16
