#!/usr/bin/env bash
# Benchmark (not a test): `weft run` of a 10-node YAML chain over memory
# datasets, process start to exit. Prints the median of N runs.
# Target (issue #3): at most 20 ms median.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-50}
cargo build --release -p weft-cli --quiet
weft="${CARGO_TARGET_DIR:-$PWD/target}/release/weft"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/conf/base" "$dir/conf/local"
printf '[project]\nname = "bench"\n' > "$dir/weft.toml"
printf 'start: 1\n' > "$dir/conf/base/parameters.yml"
{
  echo "__default__:"
  echo "  nodes:"
  echo "    - {name: n0, func: add_one, inputs: params:start, outputs: d1}"
  for i in $(seq 1 9); do
    echo "    - {name: n$i, func: add_one, inputs: d$i, outputs: d$((i + 1))}"
  done
} > "$dir/pipelines.yml"

measure() {
  local label=$1; shift
  "$weft" --project "$dir" "$@" >/dev/null 2>&1  # warm-up (creates the store)
  local samples=()
  for _ in $(seq "$N"); do
    local t0 t1
    t0=$(date +%s%N)
    "$weft" --project "$dir" "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    samples+=($(( (t1 - t0) / 1000 )))
  done
  local median
  median=$(printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-48s median %7.2f ms over %d runs\n' "$label" "$(echo "$median / 1000" | bc -l)" "$N"
}

echo "weft CLI benchmark: 10-node YAML chain over memory datasets, process start to exit"
measure "weft run (SQLite run store, default)" run
measure "weft run --no-store" run --no-store
