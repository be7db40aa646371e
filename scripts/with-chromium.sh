#!/usr/bin/env bash
# Runs a command with a headless Chromium behind a local chromedriver.
#
#   scripts/with-chromium.sh cargo nextest run --workspace -E 'binary(web)'
#
# Installs Debian's `chromium` and `chromium-driver` with apt-get when
# chromedriver is missing (`sudo` when not root; `apt-get update` first),
# starts chromedriver on 127.0.0.1 on a free port, waits until it answers
# `/status` (polling, no fixed sleep), exports
#   WEFT_TEST_WEBDRIVER=http://127.0.0.1:PORT
#   WEFT_TEST_CHROMIUM=/path/to/chromium
# for the command, and always stops chromedriver by its PID on exit; the
# command's exit code is returned.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    echo "with-chromium: installing chromium and chromium-driver (apt-get)..." >&2
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >&2
fi

PORT="$(python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
)"
LOG="$(mktemp /tmp/weft-chromedriver.XXXXXX.log)"
pid=""
cleanup() {
    local rc=$?
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -f "$LOG"
    exit "$rc"
}
trap cleanup EXIT INT TERM

chromedriver --port="$PORT" --allowed-ips=127.0.0.1 >"$LOG" 2>&1 &
pid=$!
ADDRESS="http://127.0.0.1:$PORT"
deadline=$((SECONDS + 30))
until python3 - "$ADDRESS" <<'PY' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/status", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "with-chromium: chromedriver at $ADDRESS did not answer within 30 s" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.2
done

export WEFT_TEST_WEBDRIVER="$ADDRESS"
WEFT_TEST_CHROMIUM="$(command -v chromium)"
export WEFT_TEST_CHROMIUM
echo "with-chromium: chromedriver at $ADDRESS ($("$WEFT_TEST_CHROMIUM" --version 2>/dev/null || echo chromium))" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
