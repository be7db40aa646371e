#!/usr/bin/env bash
# The whole test suite, real services included: the doc tests, then every
# other test with cargo-nextest (cargo test if nextest is missing) against a
# throwaway PostgreSQL server that scripts/with-postgres.sh installs (Debian's
# `postgresql` package, when missing), starts and removes, and one Ray head
# for the whole suite that scripts/with-ray.sh installs (`ray[default]` from
# PyPI in a venv under the target folder), starts on 127.0.0.1 and stops,
# one S3-compatible server (moto from PyPI, scripts/with-s3.sh), one
# one-node Slurm cluster (Debian's `slurm-wlm` and `munge`, installed when
# missing; munged, slurmctld and slurmd on 127.0.0.1, scripts/with-slurm.sh),
# and a headless Chromium behind chromedriver for the web page's browser
# tests (Debian's chromium and chromium-driver, scripts/with-chromium.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --doc --quiet

if cargo nextest --version >/dev/null 2>&1; then
  runner=(cargo nextest run --workspace --no-fail-fast)
else
  runner=(cargo test --workspace --no-fail-fast)
fi
scripts/with-ray.sh scripts/with-postgres.sh scripts/with-s3.sh scripts/with-slurm.sh scripts/with-chromium.sh "${runner[@]}" "$@"
