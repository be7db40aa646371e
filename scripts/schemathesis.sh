#!/usr/bin/env bash
# Schemathesis (PyPI) against `weft serve`'s own OpenAPI document: every
# check (not_a_server_error, response_schema_conformance, status codes,
# content types, negative data rejection, ...) but use_after_free (DELETE
# /v1/sessions/{id} terminates a session, which stays readable with its
# termination reason, as DESIGN says), a bounded number of examples per
# operation, with a bearer token, on a loopback port; settings in
# scripts/schemathesis.toml. Exits non-zero on any failure.
#
#   scripts/schemathesis.sh     (MAX_EXAMPLES=N, SEED=N, WEFT_BIN=path to a built weft)
#
# The venv lives under the cargo target folder (reused between runs); the
# server and its temp project are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target="${CARGO_TARGET_DIR:-$repo/target}"
MAX_EXAMPLES=${MAX_EXAMPLES:-10}
SEED=${SEED:-1}

venv="$target/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis
fi

# WEFT_BIN=path uses an already built binary (e.g. a release build).
if [ -n "${WEFT_BIN:-}" ]; then
  weft=$WEFT_BIN
else
  cargo build -p weft-cli --quiet
  weft="$target/debug/weft"
fi

tmp=$(mktemp -d /tmp/weft-schemathesis.XXXXXX)
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
printf '[project]\nname = "schemathesis"\n' > "$proj/weft.toml"
printf 'start: 1\n' > "$proj/conf/base/parameters.yml"
cat > "$proj/pipelines.yml" <<'YML'
__default__:
  nodes:
    - {name: one, func: add_one, inputs: params:start, outputs: out}
YML
token="st-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$token" > "$tmp/token"

"$weft" serve --project "$proj" --listen 127.0.0.1:0 --store "$tmp/weft.db" \
  --token-file "$tmp/token" > "$tmp/serve.out" 2> "$tmp/serve.err" &
server_pid=$!
addr=""
for _ in $(seq 200); do
  addr=$(sed -n 's|.*listening on http://\([^ ]*\).*|\1|p' "$tmp/serve.out")
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$addr" ]; then
  echo "schemathesis: weft serve did not start:" >&2
  cat "$tmp/serve.err" >&2
  exit 1
fi

set +e
cd "$tmp"
timeout 600 "$venv/bin/schemathesis" --config-file "$repo/scripts/schemathesis.toml" run "http://$addr/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --exclude-checks use_after_free \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --request-timeout 10 \
  --workers 2 \
  --generation-database none \
  --no-color
status=$?
set -e
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "schemathesis: weft serve died during the run:" >&2
  tail -n 50 "$tmp/serve.err" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "schemathesis: failures (exit $status); server log tail:" >&2
  tail -n 20 "$tmp/serve.err" >&2
fi
exit "$status"
