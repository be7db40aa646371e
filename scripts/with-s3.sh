#!/usr/bin/env bash
# Runs a command against a throwaway S3-compatible server (moto, PyPI).
#
#   scripts/with-s3.sh cargo nextest run -p weft-object-store
#
# Installs `moto[server]` into a virtual environment under the cargo target
# folder (reused between runs), starts `moto_server` on a free loopback
# port, waits until it answers (polling, no fixed sleep) and exports
#   WEFT_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
# for the command. moto accepts any access key and secret and keeps
# everything in memory; the server is stopped on exit (also on failure or
# Ctrl-C) and the command's exit code is returned.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
venv="$target/moto-venv"
if [ ! -x "$venv/bin/moto_server" ]; then
    echo "with-s3: installing moto[server] into $venv ..." >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]" >&2
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

port="$(free_port)"
log="$(mktemp /tmp/weft-moto.XXXXXX.log)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!

cleanup() {
    local rc=$?
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
    rm -f "$log"
    exit "$rc"
}
trap cleanup EXIT INT TERM

endpoint="http://127.0.0.1:$port"
ready=""
for _ in $(seq 1 300); do
    if ! kill -0 "$moto_pid" 2>/dev/null; then
        echo "with-s3: moto_server exited early:" >&2
        cat "$log" >&2
        exit 1
    fi
    if python3 - "$endpoint" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1).read()
PY
    then
        ready=1
        break
    fi
    # Poll every 0.1 s; the 1 s request timeout bounds each try.
    sleep 0.1
done
if [ -z "$ready" ]; then
    echo "with-s3: moto_server did not answer on $endpoint within 30 s:" >&2
    cat "$log" >&2
    exit 1
fi

export WEFT_TEST_S3_ENDPOINT="$endpoint"
echo "with-s3: moto S3 at $WEFT_TEST_S3_ENDPOINT" >&2
set +e
"$@"
rc=$?
set -e
exit "$rc"
