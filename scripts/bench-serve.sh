#!/usr/bin/env bash
# Benchmarks (not tests) of `weft serve` over loopback, on the SQLite store
# and then on PostgreSQL (scripts/with-postgres.sh), each table with a fresh
# server per section:
#   * accepted dispatches: wrk, 64 connections, 10 s, `POST
#     /v1/sessions/{id}/runs {"runs":[{}]}` (202 after the durable write),
#     spread over 8 sessions with a high max_concurrency (each session queues
#     at most 10,000 runs; the rate counts 202s only); target >= 2,000/s,
#     p99 < 20 ms;
#   * completed runs end to end: N trivial runs submitted in batches, until
#     the session's counts show them all finished; target >= 1,000/s;
#   * a 10-node add_one chain with `?wait=true`, 1 and 8 clients; target
#     >= 20x Kedro 1.7's server (50 runs/s with 1 client, 29 with 8);
#   * 1,000 open event streams while runs flow: RSS growth, target < 50 MB;
#   * 100,000 trivial runs through one session after 10,000 warm-up runs: RSS
#     growth, target < 10 MB (submitting stops after SOAK_SECONDS, 60 by
#     default, to keep the script within about 5 minutes; the row says how
#     many runs it took).
# Sizes: E2E_RUNS (E2E_RUNS_PG on PostgreSQL, 5,000 by default so that the
# row ends within the helper's 240 s deadline), SOAK_RUNS, SOAK_SECONDS,
# SUBSCRIBERS, WRK_SECONDS, CHAIN_SECONDS. SECTIONS (default
# "dispatch e2e chain events soak") picks the sections, BACKENDS (default
# "sqlite postgres") the stores, for repeated before/after comparisons.
# Loopback only; every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
E2E_RUNS=${E2E_RUNS:-20000}
SOAK_RUNS=${SOAK_RUNS:-100000}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
WRK_SECONDS=${WRK_SECONDS:-10}
CHAIN_SECONDS=${CHAIN_SECONDS:-5}
SOAK_SECONDS=${SOAK_SECONDS:-60}
E2E_RUNS_PG=${E2E_RUNS_PG:-5000}
SECTIONS=${SECTIONS:-dispatch e2e chain events soak}
BACKENDS=${BACKENDS:-sqlite postgres}
export E2E_RUNS SOAK_RUNS SUBSCRIBERS WRK_SECONDS CHAIN_SECONDS SOAK_SECONDS E2E_RUNS_PG SECTIONS
ulimit -n 20000 2>/dev/null || true

tmp=$(mktemp -d /tmp/weft-bench-serve.XXXXXX)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() {
  local rc=$?
  stop_server
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT INT TERM

if [ "${1:-}" != "--table" ]; then
  if ! command -v wrk >/dev/null 2>&1; then
    echo "bench-serve: installing wrk (apt-get)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }; } > /dev/null
  fi
  cargo build --release -p weft-cli --quiet
fi
weft="${CARGO_TARGET_DIR:-$repo/target}/release/weft"
helper=(python3 "$repo/scripts/bench-serve.py")

# The project: `__default__` is one trivial node, `chain` ten add_one nodes.
proj="$tmp/project"
mkdir -p "$proj/conf/base" "$proj/conf/local"
printf '[project]\nname = "bench-serve"\n' > "$proj/weft.toml"
printf 'start: 1\n' > "$proj/conf/base/parameters.yml"
{
  echo "__default__:"
  echo "  nodes:"
  echo "    - {name: one, func: add_one, inputs: params:start, outputs: out}"
  echo "chain:"
  echo "  nodes:"
  echo "    - {name: c0, func: add_one, inputs: params:start, outputs: d1}"
  for ((i = 1; i < 10; i++)); do
    echo "    - {name: c$i, func: add_one, inputs: d$i, outputs: d$((i + 1))}"
  done
} > "$proj/pipelines.yml"

# start_server STORE: a fresh `weft serve` on a free loopback port; sets
# $addr and $server_pid.
start_server() {
  local store=$1 log="$tmp/serve.out"
  : > "$log"
  "$weft" serve --project "$proj" --listen 127.0.0.1:0 --store "$store" > "$log" 2> "$tmp/serve.err" &
  server_pid=$!
  for _ in $(seq 200); do
    addr=$(sed -n 's|.*listening on http://\([^ ]*\).*|\1|p' "$log")
    [ -n "$addr" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench-serve: the server did not start:" >&2
  cat "$tmp/serve.err" >&2
  exit 1
}

# field KEY LINE: the value of key=value in a RESULT line.
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<< "$2"; }

# want SECTION: whether SECTIONS names it.
want() { [[ " $SECTIONS " == *" $1 "* ]]; }

row() { printf '%-52s %12s %10s %10s   %s\n' "$@"; }

# fresh_store NAME: an empty store for one section (a new SQLite file, or a
# new database on the PostgreSQL server), so that no section's leftover
# queue runs in the next one.
fresh_store() {
  if [ -n "${WEFT_TEST_POSTGRES_URL:-}" ]; then
    psql -q "$WEFT_TEST_POSTGRES_URL" -c "CREATE DATABASE bench_$1" >&2
    echo "${WEFT_TEST_POSTGRES_URL%/*}/bench_$1"
  else
    echo "$tmp/$1.db"
  fi
}

table() {
  local label=$1
  echo
  echo "weft serve on $label (2 cores, loopback; wrk and the clients share the cores)"
  row "measure" "runs/s" "p50 ms" "p99 ms" "target / other"

  # 1. Accepted dispatches with wrk.
  if want dispatch; then
  start_server "$(fresh_store dispatch)"
  local ids=()
  for _ in 1 2 3 4 5 6 7 8; do
    ids+=("$("${helper[@]}" create "$addr" '{"max_concurrency": 1000000}')")
  done
  local sessions
  sessions=$(IFS=,; echo "${ids[*]}")
  local out
  out=$(WEFT_SESSIONS="$sessions" wrk -t2 -c64 -d"${WRK_SECONDS}s" --timeout 10s \
    -s "$repo/scripts/bench-serve.lua" "http://$addr")
  local wrkline
  wrkline=$(grep '^WRK ' <<< "$out")
  read -r _ reqs dur_us p50_us p99_us non2xx sock_errs <<< "$wrkline"
  # The rate counts the 202s only (a 429 from a full queue is quick).
  row "accepted dispatches, 64 connections, ${WRK_SECONDS} s" \
    "$(echo "($reqs - $non2xx) * 1000000 / $dur_us" | bc)" \
    "$(echo "scale=2; $p50_us / 1000" | bc)" "$(echo "scale=2; $p99_us / 1000" | bc)" \
    ">=2000/s, p99<20 ms; $reqs requests, $non2xx not 202, $sock_errs socket errors"
  stop_server
  fi

  # 2. Completed runs end to end.
  local sid r
  if want e2e; then
  start_server "$(fresh_store e2e)"
  local e2e_runs=$E2E_RUNS
  [ -n "${WEFT_TEST_POSTGRES_URL:-}" ] && e2e_runs=$E2E_RUNS_PG
  sid=$("${helper[@]}" create "$addr" '{"max_concurrency": 1000000}')
  r=$("${helper[@]}" e2e "$addr" "$sid" "$e2e_runs" 1000)
  row "completed runs end to end ($(field runs "$r") trivial runs)" "$(field runs_per_s "$r")" "" "" \
    ">=1000/s; $(field seconds "$r") s, $(field succeeded_total "$r") succeeded"
  stop_server
  fi

  # 3. The 10-node chain, ?wait=true.
  if want chain; then
  start_server "$(fresh_store chain)"
  sid=$("${helper[@]}" create "$addr" '{"max_concurrency": 1000000}')
  local clients
  for clients in 1 8; do
    local kedro=50
    [ "$clients" = 8 ] && kedro=29
    r=$("${helper[@]}" chain "$addr" "$sid" "$clients" "$CHAIN_SECONDS")
    row "10-node chain ?wait=true, $clients client(s)" "$(field runs_per_s "$r")" \
      "$(field p50_ms "$r")" "$(field p99_ms "$r")" \
      ">=$((kedro * 20))/s (20x Kedro's $kedro/s); $(field runs "$r") runs"
  done
  stop_server
  fi

  # 4. Event subscribers.
  if want events; then
  start_server "$(fresh_store events)"
  sid=$("${helper[@]}" create "$addr" '{"max_concurrency": 1000000}')
  "${helper[@]}" e2e "$addr" "$sid" 2000 1000 > /dev/null  # warm-up
  r=$("${helper[@]}" subscribers "$addr" "$sid" "$server_pid" "$SUBSCRIBERS" 2000)
  row "$SUBSCRIBERS event subscribers, 2,000 runs flowing: RSS +MB" "$(field growth_mb "$r")" "" "" \
    "<50 MB; $(field rss_before_mb "$r") -> $(field rss_peak_mb "$r") MB, $(field answered "$r") streams answered, $(field event_mb "$r") MB of events"
  stop_server
  fi

  # 5. Many runs through one session.
  if want soak; then
  start_server "$(fresh_store soak)"
  sid=$("${helper[@]}" create "$addr" '{"max_concurrency": 1000000}')
  r=$("${helper[@]}" soak "$addr" "$sid" "$server_pid" 10000 "$SOAK_RUNS" "$SOAK_SECONDS")
  row "$(field runs "$r") runs through one session: RSS +MB" "$(field growth_mb "$r")" "" "" \
    "<10 MB; $(field rss_before_mb "$r") -> $(field rss_after_mb "$r") MB, $(field runs_per_s "$r") runs/s"
  stop_server
  fi
}

# --table: one table with the binary already built (on PostgreSQL when
# WEFT_TEST_POSTGRES_URL is set, as scripts/with-postgres.sh does).
if [ "${1:-}" = "--table" ]; then
  if [ -n "${WEFT_TEST_POSTGRES_URL:-}" ]; then
    table "PostgreSQL $(psql --version 2>/dev/null | awk '{print $3}')"
  else
    table "SQLite"
  fi
  exit 0
fi

if [[ " $BACKENDS " == *" sqlite "* ]]; then
  table "SQLite"
fi
if [[ " $BACKENDS " == *" postgres "* ]]; then
  scripts/with-postgres.sh "$0" --table
fi
