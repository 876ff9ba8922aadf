#!/usr/bin/env bash
# The crash suite (not in CI), after RocksDB's crash tests: the real engine runs against the
# simulator with a steady flow of commands (creates, updates, deletes, refused ones), the
# configuration messages they cause and the logs they produce; it is SIGKILLed at random moments
# and restarted, TRIALS times, then drained and stopped gracefully. Checked at the end (see
# tests/crash.rs): one terminal status per command, no entity created twice or lost, the last
# full-config reflects every change, every log record accepted by the durable queue reached the
# simulator (only the last ones emitted before a SIGKILL may be lost), metric counts within one
# flush interval of the truth, no protocol violation.
#
# Usage: scripts/crash-test.sh [TRIALS]   (default 50)
# Also read: CRASH_COMMANDS (per trial, 200), CRASH_SEED (replay a run), CRASH_FLUSH_MS (1000),
# CRASH_FLUSH_SLACK_MS (500), CRASH_EARLY_KILLS (0.1).
# Prints every violation, then one summary line; exits non-zero on any violation.
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-50}"
case "$trials" in
  '' | *[!0-9]* | 0) echo "usage: scripts/crash-test.sh [TRIALS] (a positive number)" >&2; exit 2 ;;
esac
scripts/setup.sh
. scripts/env.sh
cargo build --locked --tests
log="$CARGO_TARGET_DIR/crash-test.log"
echo "crash-test: $trials trials; full output in $log"
set +e
CRASH_TRIALS="$trials" cargo nextest run --locked --profile crash --test main --run-ignored only \
  --no-capture -E 'test(=crash::nothing_promised_is_lost_across_random_sigkills)' 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
summary="$(grep -E '^crash-test: [0-9]+ trials, ' "$log" | tail -n 1 || true)"
if [ -z "$summary" ]; then
  echo "crash-test: $trials trials, no summary: the run stopped before its checks (see $log)"
  exit 1
fi
echo "$summary"
violations="$(sed -E 's/.* ([0-9]+) violations$/\1/' <<<"$summary")"
if [ "$status" -ne 0 ] || [ "$violations" != 0 ]; then
  exit 1
fi
