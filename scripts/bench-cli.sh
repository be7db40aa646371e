#!/usr/bin/env bash
# Benchmarks (not tests) of the `weft` binary, process start to exit:
#   * `weft run` of a 10-node YAML chain over memory datasets (median of N);
#   * `weft run` of 1-, 1,000- and 100,000-node chains: µs per node over the
#     1-node run (target: at most 5 µs/node);
#   * `weft multirun` over 1,000 distinct parameter points of a 10-node chain,
#     one worker: µs per run with --no-store (target ≤ 150) and what the
#     default SQLite store adds (target ≤ 100).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
cargo build --release -p weft-cli --quiet
weft="${CARGO_TARGET_DIR:-$PWD/target}/release/weft"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# project DIR NODES: a chain of NODES add_one nodes over memory datasets.
project() {
  local dir=$1 nodes=$2
  mkdir -p "$dir/conf/base" "$dir/conf/local"
  printf '[project]\nname = "bench"\n' > "$dir/weft.toml"
  printf 'start: 1\n' > "$dir/conf/base/parameters.yml"
  {
    echo "__default__:"
    echo "  nodes:"
    echo "    - {name: n0, func: add_one, inputs: params:start, outputs: d1}"
    for ((i = 1; i < nodes; i++)); do
      echo "    - {name: n$i, func: add_one, inputs: d$i, outputs: d$((i + 1))}"
    done
  } > "$dir/pipelines.yml"
}

# median_us N CMD...: median wall time of N runs in microseconds.
median_us() {
  local n=$1; shift
  "$@" >/dev/null 2>&1  # warm-up (creates the store)
  local samples=()
  for _ in $(seq "$n"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    samples+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

project "$root/p10" 10
echo "weft CLI benchmarks, process start to exit (median)"
printf '%-58s %9.2f ms\n' "weft run, 10-node chain (SQLite run store, default)" \
  "$(echo "$(median_us "$N" "$weft" --project "$root/p10" run) / 1000" | bc -l)"
printf '%-58s %9.2f ms\n' "weft run --no-store, 10-node chain" \
  "$(echo "$(median_us "$N" "$weft" --project "$root/p10" run --no-store) / 1000" | bc -l)"

project "$root/p1" 1
one=$(median_us "$N" "$weft" --project "$root/p1" run --no-store)
for nodes in 1000 100000; do
  project "$root/p$nodes" "$nodes"
  reps=$(( nodes > 10000 ? 3 : N ))
  t=$(median_us "$reps" "$weft" --project "$root/p$nodes" run --no-store)
  printf '%-58s %9.2f ms  %6.2f µs/node over the 1-node run\n' "weft run --no-store, $nodes-node chain" \
    "$(echo "$t / 1000" | bc -l)" "$(echo "($t - $one) / ($nodes - 1)" | bc -l)"
done

points="start=range(0,1000)"
for store in --no-store ""; do
  t=$(median_us 3 "$weft" --project "$root/p10" multirun --params "$points" --max-workers 1 --json $store)
  label="weft multirun, 1,000 distinct points, 10-node chain, 1 worker ${store:-(SQLite store)}"
  printf '%-58s %9.2f ms  %6.1f µs/run\n' "$label" "$(echo "$t / 1000" | bc -l)" "$(echo "$t / 1000" | bc -l)"
done
