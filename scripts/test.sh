#!/usr/bin/env bash
# The whole test suite, real services included: the doc tests, then every
# other test with cargo-nextest (cargo test if nextest is missing) against a
# throwaway PostgreSQL server that scripts/with-postgres.sh installs (Debian's
# `postgresql` package, when missing), starts and removes.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --doc --quiet

if cargo nextest --version >/dev/null 2>&1; then
  runner=(cargo nextest run --workspace --no-fail-fast)
else
  runner=(cargo test --workspace --no-fail-fast)
fi
scripts/with-postgres.sh scripts/with-s3.sh "${runner[@]}" "$@"
