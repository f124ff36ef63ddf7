#!/usr/bin/env bash
# Same command, same numbers, clone to clone: two fresh clones of HEAD in /tmp, in each `.ci/setup` and the README's
# first command (`snakemake --cores CORES results/table2.md`, with the preset, seeds and epochs given), then their
# results/table2.csv compared byte for byte. Prints each clone's wall times and the verdict; exit 1 when they differ.
# Usage: bash bench/two_clones.sh PRESET [SEEDS] [EPOCHS] [CORES]
#   e.g. bash bench/two_clones.sh tiny '[0]' 2 2      (SEEDS, EPOCHS: the config's when omitted or '-'; CORES: 4)
#   bash bench/two_clones.sh -                        (no --config at all: exactly the README's first command)
# The clones run one after the other (each gets the machine's cores), and are kept (their paths are printed).
set -euo pipefail
preset=${1:?usage: bash bench/two_clones.sh PRESET [SEEDS] [EPOCHS] [CORES]}
seeds=${2:--}; epochs=${3:--}; cores=${4:-4}
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse HEAD)
config=()
[ "$preset" = - ] || config+=("dataset={preset: $preset}")
[ "$seeds" = - ] || config+=("seeds=$seeds")
[ "$epochs" = - ] || config+=("epochs=$epochs")
base=$(mktemp -d /tmp/avvp-two-clones-XXXXXX)
echo "commit ${commit:0:12}; clones in $base; snakemake --cores $cores results/table2.md${config[*]:+ --config ${config[*]}}"
now() { date +%s.%N; }
for c in a b; do
  git clone -q --no-hardlinks "$repo" "$base/$c"
  git -C "$base/$c" checkout -q --detach "$commit"
  t0=$(now)
  (cd "$base/$c" && bash .ci/setup) > "$base/$c.setup.log" 2>&1 || { echo "clone $c: setup failed ($base/$c.setup.log)"; exit 1; }
  t1=$(now)
  (cd "$base/$c" && .venv/bin/snakemake --cores "$cores" results/table2.md ${config[@]:+--config "${config[@]}"}) \
    > "$base/$c.snakemake.log" 2>&1 || { echo "clone $c: snakemake failed ($base/$c.snakemake.log)"; exit 1; }
  t2=$(now)
  awk -v c="$c" -v a="$t0" -v b="$t1" -v d="$t2" \
    'BEGIN { printf "clone %s: .ci/setup %.0f s, snakemake %.0f s (%d min %d s)\n", c, b - a, d - b, (d - b) / 60, (d - b) % 60 }'
  echo "clone $c: results/table2.csv sha256 $(sha256sum "$base/$c/results/table2.csv" | cut -c1-16)," \
       "data/packed manifest sha256 $(sha256sum "$base/$c"/data/packed/*/manifest.json | cut -c1-16)"
done
if cmp -s "$base/a/results/table2.csv" "$base/b/results/table2.csv"; then
  echo "results/table2.csv: byte-identical in both clones"
else
  echo "results/table2.csv: DIFFERS between the clones"; diff "$base/a/results/table2.csv" "$base/b/results/table2.csv" | head -20
  exit 1
fi
# The markdown differs only where it names its clone (nothing, when the table says no paths).
cmp -s "$base/a/results/table2.md" "$base/b/results/table2.md" && echo "results/table2.md: byte-identical" \
  || { echo "results/table2.md differs:"; diff "$base/a/results/table2.md" "$base/b/results/table2.md" | head -10; }
