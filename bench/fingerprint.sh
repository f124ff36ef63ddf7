#!/usr/bin/env bash
# Behaviour fingerprint for refactors: run it before and after a change that must not change results, and diff.
# tiny dataset, MA refinement (2 step-1 epochs), HAN, MA*, HAN + Ours for 3 epochs: sha256 of every metrics.json,
# of the refined label arrays, and the dry-run job list of `snakemake -n all`.
# Usage: bash bench/fingerprint.sh REPO OUT   (REPO: a checkout with .venv, e.g. a git worktree of the old commit)
set -euo pipefail
repo=$1; out=$2
rm -rf "$out"; mkdir -p "$out"
cd "$repo"
A=.venv/bin/avvp
$A synth --preset tiny --seed 0 --out "$out/raw" > /dev/null
$A pack --data "$out/raw" --out "$out/packed" > /dev/null
$A refine --data "$out/packed" --seed 0 --out "$out/refine" --epochs 2 --threads 1 > /dev/null 2>&1
for v in "HAN" "MA*" "HAN + Ours"; do
  s=$(echo "$v" | tr -c 'a-zA-Z0-9\n' '_')
  ref=""; [ "$v" = "MA*" ] && ref="--refined $out/refine/refined_labels.npz"
  $A train --variant "$v" --seed 0 --data "$out/packed" --out "$out/runs/$s" --epochs 3 --threads 1 $ref > /dev/null 2>&1
  for sp in val test; do $A evaluate --run "$out/runs/$s" --split $sp --threads 1 > /dev/null; done
done
.venv/bin/python -c "import numpy as np,hashlib,sys; z=np.load(sys.argv[1]); print(hashlib.sha256(b''.join(z[k].tobytes() for k in sorted(z.files))).hexdigest(), ' refine/refined_labels.npz (arrays)')" "$out/refine/refined_labels.npz"
sha256sum "$out"/runs/*/*/metrics.json | sed "s|$out/||"
.venv/bin/snakemake -n all --quiet rules 2>/dev/null | sed -n '/^Job stats/,$p' > "$out/dryrun.txt" || true
.venv/bin/snakemake -n all 2>/dev/null | grep -E "^(rule|    wildcards|    output)" | sort > "$out/dryrun_jobs.txt" || true
wc -l "$out/dryrun_jobs.txt"; sha256sum "$out/dryrun_jobs.txt" | cut -c1-16
