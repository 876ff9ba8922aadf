#!/usr/bin/env bash
# The first command to run: set up, build, and watch an agent work with a simulated OIAnalytics.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
echo "Building oibus-agent (the first build compiles RocksDB: about 25 minutes on 2 cores)..."
cargo build --locked --quiet --bin oibus-agent
exec "$CARGO_TARGET_DIR/debug/oibus-agent" demo "$@"
