#!/usr/bin/env bash
# Runs a command against a throwaway single-node Ray head.
#
#   scripts/with-ray.sh cargo nextest run -p weft-cli --test ray
#
# Creates a virtual environment under the cargo target folder (reused
# between runs) with `ray[default]` from PyPI, starts a head bound to
# 127.0.0.1 (usage stats off, 2 CPUs, a small object store, its own
# temporary folder), waits until its Jobs REST API answers (polling, no
# fixed sleep), exports
#   WEFT_TEST_RAY_ADDRESS=http://127.0.0.1:PORT
# for the command, and always stops the head (`ray stop --force`) and
# deletes its folder on exit; the command's exit code is returned.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

RAY_VERSION=2.60.0
repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
venv="$target/ray-venv"
if ! "$venv/bin/python" -c "import ray, sys; sys.exit(ray.__version__ != '$RAY_VERSION')" >/dev/null 2>&1; then
    echo "with-ray: installing ray[default]==$RAY_VERSION in $venv..." >&2
    mkdir -p "$target"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "ray[default]==$RAY_VERSION" >&2
fi

free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

export RAY_USAGE_STATS_ENABLED=0
# Ray keeps its sockets and logs here; a short path (AF_UNIX paths are
# limited to 107 bytes).
WORK="$(mktemp -d /tmp/weft-ray.XXXXXX)"
started=""

cleanup() {
    local rc=$?
    if [ -n "$started" ]; then
        "$venv/bin/ray" stop --force >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT INT TERM

DASHBOARD_PORT="$(free_port)"
GCS_PORT="$(free_port)"
started=1
if ! "$venv/bin/ray" start --head \
    --node-ip-address 127.0.0.1 \
    --port "$GCS_PORT" \
    --dashboard-host 127.0.0.1 \
    --dashboard-port "$DASHBOARD_PORT" \
    --num-cpus 2 \
    --object-store-memory 200000000 \
    --temp-dir "$WORK" \
    --disable-usage-stats >"$WORK/start.log" 2>&1; then
    echo "with-ray: the Ray head did not start:" >&2
    cat "$WORK/start.log" >&2
    exit 1
fi

ADDRESS="http://127.0.0.1:$DASHBOARD_PORT"
# The dashboard's Jobs API answers a while after `ray start` returns.
deadline=$((SECONDS + 120))
until python3 - "$ADDRESS" <<'PY' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/api/jobs/", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "with-ray: the Jobs API at $ADDRESS did not answer within 120 s" >&2
        cat "$WORK/start.log" >&2
        exit 1
    fi
    sleep 0.2
done

export WEFT_TEST_RAY_ADDRESS="$ADDRESS"
echo "with-ray: Ray $RAY_VERSION head, Jobs API at $ADDRESS (temp dir $WORK)" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
