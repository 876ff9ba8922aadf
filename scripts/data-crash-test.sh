#!/usr/bin/env bash
# The data-plane crash suite (not in CI): a folder-scanner south and a north `oianalytics` run
# against the simulator while files are dropped in the folder; the engine is SIGKILLed at a
# random moment of each trial and restarted, TRIALS times. Checked at the end
# (tests/data_plane.rs `crash_run`): every file dropped reached the simulator at least once;
# duplicates (a file read again because the kill came between its commit to the cache and its
# removal from the folder, or a batch sent again because the kill came before its ack) are
# counted and reported, never a failure.
#
# Usage: scripts/data-crash-test.sh [TRIALS]   (default 20)
# Also read: DATA_CRASH_FILES (most files dropped per trial, 200), DATA_CRASH_SEED (replay).
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-20}"
case "$trials" in
  '' | *[!0-9]* | 0) echo "usage: scripts/data-crash-test.sh [TRIALS] (a positive number)" >&2; exit 2 ;;
esac
scripts/setup.sh
. scripts/env.sh
cargo build --locked --tests
DATA_CRASH_TRIALS="$trials" cargo nextest run --locked --profile crash --test main --run-ignored only \
  --no-capture -E 'test(=data_plane::no_file_is_lost_across_many_random_sigkills)' 2>&1 \
  | grep -E '^data crash:|PASS|FAIL|panicked|missing'
