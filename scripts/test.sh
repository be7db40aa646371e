#!/usr/bin/env bash
# The whole test suite, real services included: starts a throwaway
# PostgreSQL server (installing Debian's package if needed) for the store
# tests, runs every test with cargo-nextest (cargo test if nextest is
# missing), then the doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if cargo nextest --version >/dev/null 2>&1; then
  runner=(cargo nextest run --workspace --no-fail-fast)
else
  runner=(cargo test --workspace --no-fail-fast)
fi

scripts/with-postgres.sh "${runner[@]}" "$@"
cargo test --workspace --doc --quiet
