#!/usr/bin/env bash
# The Ray launcher's latencies, printed (a benchmark, not a timed test),
# against a throwaway Ray head (scripts/with-ray.sh) in the same run:
#
# - Ray's own job submission latency: `POST /api/jobs/` of a trivial
#   entrypoint to the job's status RUNNING (polled every 5 ms);
# - weft, cold: a new `weft serve --launcher ray` session and its first run,
#   from the session's creation (POST /v1/sessions, which submits the
#   worker's job) and the run's dispatch right after it to the run's start
#   (its recorded start_time): the job submission, Ray's scheduling, the
#   worker's start and its ready /healthz included;
# - weft, warm: dispatch to run start of later runs on the same worker.
#
#   scripts/bench-ray.sh            (ROUNDS=N, WEFT_BIN=path to a built weft)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target="${CARGO_TARGET_DIR:-$repo/target}"
ROUNDS=${ROUNDS:-5}

if [ -z "${WEFT_TEST_RAY_ADDRESS:-}" ]; then
    exec scripts/with-ray.sh "$0" "$@"
fi

if [ -n "${WEFT_BIN:-}" ]; then
    weft=$WEFT_BIN
else
    cargo build -p weft-cli --release --quiet
    weft="$target/release/weft"
fi

tmp=$(mktemp -d /tmp/weft-bench-ray.XXXXXX)
server_pid=""
cleanup() {
    local rc=$?
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT INT TERM

proj="$tmp/project"
mkdir -p "$proj/conf/base" "$proj/conf/local"
printf '[project]\nname = "bench-ray"\n' > "$proj/weft.toml"
printf '__default__:\n  nodes:\n    - name: one\n      func: add_one\n      inputs: params:start\n      outputs: out\n' > "$proj/pipelines.yml"
printf 'start: 1\n' > "$proj/conf/base/parameters.yml"

"$weft" serve --project "$proj" --listen 127.0.0.1:0 --store "$tmp/store.db" \
    --launcher ray --ray-address "$WEFT_TEST_RAY_ADDRESS" --worker-program "$weft" \
    > "$tmp/serve.out" 2> "$tmp/serve.err" &
server_pid=$!
for _ in $(seq 1 200); do
    grep -q "listening on" "$tmp/serve.out" 2>/dev/null && break
    sleep 0.05
done
server=$(grep -o 'http://[0-9.:]*' "$tmp/serve.out" | head -1)
[ -n "$server" ] || { cat "$tmp/serve.err" >&2; exit 1; }

python3 - "$WEFT_TEST_RAY_ADDRESS" "$server" "$ROUNDS" <<'PY'
import datetime, json, statistics, sys, time, urllib.request, uuid

ray, server, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])

def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {url}: {e.code} {e.read().decode()[:500]}")

def ts(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")[:26] + "+00:00").timestamp()

def wait_run(run_id):
    while True:
        r = call("GET", f"{server}/v1/runs/{run_id}")
        if r["status"] not in ("queued", "running"):
            return r
        time.sleep(0.005)

def dispatch_to_start(session, t0=None):
    t0 = t0 or time.time()
    ids = call("POST", f"{server}/v1/sessions/{session}/runs", {"spec": {}})["run_ids"]
    r = wait_run(ids[0])
    assert r["status"] == "succeeded", r
    return (ts(r["start_time"]) - t0) * 1e3

ray_ms, cold_ms, warm_ms = [], [], []
for _ in range(rounds):
    # Ray's own submission latency, a trivial entrypoint.
    sid = f"bench-{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    call("POST", f"{ray}/api/jobs/", {"entrypoint": "sleep 60", "submission_id": sid})
    while call("GET", f"{ray}/api/jobs/{sid}")["status"] != "RUNNING":
        time.sleep(0.005)
    ray_ms.append((time.monotonic() - t0) * 1e3)
    call("POST", f"{ray}/api/jobs/{sid}/stop", {})
    # weft: a new session's first run, then warm runs on its worker.
    t0 = time.time()
    session = call("POST", f"{server}/v1/sessions", {"max_concurrency": 1})["id"]
    cold_ms.append(dispatch_to_start(session, t0))
    for _ in range(5):
        warm_ms.append(dispatch_to_start(session))
    call("DELETE", f"{server}/v1/sessions/{session}")

def show(name, xs):
    print(f"{name:58s} median {statistics.median(xs):8.1f} ms  (min {min(xs):.1f}, max {max(xs):.1f}, n={len(xs)})")

show("Ray job submit -> RUNNING (trivial entrypoint)", ray_ms)
show("weft new session + dispatch -> run start (cold worker job)", cold_ms)
show("weft dispatch -> run start, warm Ray worker", warm_ms)
PY
