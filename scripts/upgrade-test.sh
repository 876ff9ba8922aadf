#!/usr/bin/env bash
# The slow upgrade suite (not in CI): builds a second oibus-agent reporting version 9.9.9 and
# runs the end-to-end upgrades through it: commit after the grace, updateLauncher re-exec,
# SIGKILL of the launcher at every recorded step, the release zip, and the full update-version
# round trip through the simulator. The first run compiles a second copy of the dependencies
# (RocksDB included) under <target>/upgrade-next.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo build --locked --tests
# One at a time (each drives a launcher, engines and a simulator), printing its figures.
cargo nextest run --locked --profile upgrade --test main --run-ignored only -j 1 --no-capture \
  -E 'test(/^launcher::/)' "$@"
