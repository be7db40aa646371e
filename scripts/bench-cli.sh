#!/usr/bin/env bash
# Benchmarks (not tests) of the `weft` binary, process start to exit:
#   * `weft run` of a 10-node YAML chain over memory datasets (median of N);
#   * `weft run` of 1-, 1,000- and 100,000-node chains: µs per node over the
#     1-node run (target: at most 5 µs/node);
#   * `weft multirun` over 1,000 distinct parameter points of a 10-node chain,
#     one worker: µs per run with --no-store (target ≤ 150) and what the
#     default SQLite store adds (target ≤ 100), over several sweeps in the
#     same project folder (the log and store files of earlier sweeps stay).
# Each figure is the median of its samples, with the fastest sample in
# brackets (on a loaded machine the fastest is the steadier figure).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
# WEFT_BIN=path benchmarks that binary instead of building this tree's.
if [ -z "${WEFT_BIN:-}" ]; then
  cargo build --release -p weft-cli --quiet
fi
weft="${WEFT_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/weft}"
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

# median_us N CMD...: "median min" wall time of N runs in microseconds.
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
  printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[1]}'
}

project "$root/p10" 10
ms() { echo "$1 / 1000" | bc -l; }
echo "weft CLI benchmarks, process start to exit: median [fastest]"
read -r med min < <(median_us "$N" "$weft" --project "$root/p10" run)
printf '%-58s %9.2f ms [%.2f]\n' "weft run, 10-node chain (SQLite run store, default)" "$(ms "$med")" "$(ms "$min")"
read -r med min < <(median_us "$N" "$weft" --project "$root/p10" run --no-store)
printf '%-58s %9.2f ms [%.2f]\n' "weft run --no-store, 10-node chain" "$(ms "$med")" "$(ms "$min")"

project "$root/p1" 1
read -r one one_min < <(median_us "$N" "$weft" --project "$root/p1" run --no-store)
for nodes in 1000 100000; do
  project "$root/p$nodes" "$nodes"
  reps=$(( nodes > 10000 ? 3 : N ))
  read -r t t_min < <(median_us "$reps" "$weft" --project "$root/p$nodes" run --no-store)
  printf '%-58s %9.2f ms  %6.2f µs/node over the 1-node run [%.2f]\n' "weft run --no-store, $nodes-node chain" \
    "$(ms "$t")" "$(echo "($t - $one) / ($nodes - 1)" | bc -l)" "$(echo "($t_min - $one_min) / ($nodes - 1)" | bc -l)"
done

# Sweeps: SWEEPS rounds in one project folder, each round one sweep without
# and one with the store (1,000 runs each), after a warm-up of each.
SWEEPS=${SWEEPS:-5}
project "$root/sweep" 10
sweep() { "$weft" --project "$root/sweep" multirun --params "start=range(0,1000)" --max-workers 1 --json "$@" >/dev/null 2>&1; }
timed() { local t0 t1; t0=$(date +%s%N); sweep "$@"; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
sweep --no-store
sweep
bare=(); stored=()
for _ in $(seq "$SWEEPS"); do
  bare+=("$(timed --no-store)")
  stored+=("$(timed)")
done
stat() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[1], a[NR]}'; }
read -r b_med b_min b_max < <(stat "${bare[@]}")
read -r s_med s_min s_max < <(stat "${stored[@]}")
printf '%-58s %6d µs/run [%d] (max %d)\n' "weft multirun, 1,000 points, 10-node chain, 1 worker, --no-store" "$b_med" "$b_min" "$b_max"
printf '%-58s %6d µs/run [%d] (max %d); the store adds %d µs/run\n' "same, SQLite store (default), same folder, $SWEEPS sweeps" \
  "$s_med" "$s_min" "$s_max" "$((s_med - b_med))"
