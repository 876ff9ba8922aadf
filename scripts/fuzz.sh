#!/usr/bin/env bash
# Fuzz the agent's parsers of untrusted input (cargo-fuzz, libFuzzer, nightly Rust):
#
#   scripts/fuzz.sh TARGET SECONDS   # one of: commands config upgrade_zip secrets modbus mqtt
#   scripts/fuzz.sh all SECONDS      # each in turn, SECONDS each
#   scripts/fuzz.sh list             # the targets
#
# Prints one summary line per target: executions, executions per second, crashes. Exits 1 when
# a target crashed; the input is in fuzz/artifacts/TARGET/ (replay it with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/<file>`).
#
# Seeds are fuzz/corpus/TARGET (committed, small) and the inputs of past findings,
# actors/tests-data/fuzz/TARGET (replayed by `cargo test`: tests/fuzz_replay.rs); what a run discovers goes to
# ~/.cache/oibus-agent/fuzz-corpus/TARGET, reused by the next run. The build lives in
# ~/.cache/oibus-agent/fuzz-target (OIBUS_FUZZ_TARGET_DIR) and links the librocksdb.a already
# compiled by the normal build (scripts/env.sh's target directory) instead of compiling RocksDB
# again (~25 minutes on 2 cores); without one it builds RocksDB once.
#
# Environment: FUZZ_SANITIZER (none by default: the code is safe Rust; `address` to add ASan),
# FUZZ_ARGS (more libFuzzer flags, e.g. "-max_len=8192").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

targets=(commands config upgrade_zip secrets modbus mqtt)
usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 1 ] || usage
if [ "$1" = list ]; then printf '%s\n' "${targets[@]}"; exit 0; fi
[ $# -eq 2 ] || usage
what=$1 seconds=$2
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: SECONDS must be a positive integer" >&2; exit 2; }
if [ "$what" = all ]; then
  run=("${targets[@]}")
elif printf '%s\n' "${targets[@]}" | grep -qx -- "$what"; then
  run=("$what")
else
  echo "fuzz: unknown target '$what' (targets: ${targets[*]})" >&2
  exit 2
fi

# Tools: nightly (cargo-fuzz needs -Z flags) and cargo-fuzz.
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# The shared target directory of the normal build, then our own.
# shellcheck source=scripts/env.sh
. scripts/env.sh
shared=$CARGO_TARGET_DIR
export CARGO_TARGET_DIR="${OIBUS_FUZZ_TARGET_DIR:-$HOME/.cache/oibus-agent/fuzz-target}"
mkdir -p "$CARGO_TARGET_DIR"

# Reuse a librocksdb.a of the librocksdb-sys version fuzz/Cargo.lock pins (the build script
# records its crate folder in `output`), the release one first. librocksdb-sys links it when
# ROCKSDB_LIB_DIR is set (ROCKSDB_STATIC=1: as a static library), then links libstdc++ itself;
# LZ4, compiled in, still comes from lz4-sys. A private copy keeps the fuzz build independent
# of rebuilds in the shared directory.
version=$(awk '/^name = "librocksdb-sys"/ {getline; gsub(/[" ]/, ""); sub(/^version=/, ""); print}' fuzz/Cargo.lock)
prebuilt=
for profile in release debug; do
  for lib in $(find "$shared/$profile/build" -path '*librocksdb-sys-*/out/librocksdb.a' \
      -printf '%T@ %p\n' 2>/dev/null | sort -rn | cut -d' ' -f2-); do
    if grep -qF "librocksdb-sys-$version" "$(dirname "$(dirname "$lib")")/output" 2>/dev/null; then
      prebuilt=$lib
      break 2
    fi
  done
done
if [ -n "$prebuilt" ]; then
  libdir="$CARGO_TARGET_DIR/prebuilt-rocksdb"
  mkdir -p "$libdir"
  if [ ! -f "$libdir/librocksdb.a" ] || [ "$prebuilt" -nt "$libdir/librocksdb.a" ]; then
    cp "$prebuilt" "$libdir/librocksdb.a.tmp" && mv "$libdir/librocksdb.a.tmp" "$libdir/librocksdb.a"
  fi
  export ROCKSDB_LIB_DIR="$libdir" ROCKSDB_STATIC=1
  echo "fuzz: linking the prebuilt RocksDB $version ($prebuilt)"
else
  echo "fuzz: no prebuilt librocksdb.a $version in $shared; RocksDB is compiled once (long)"
fi

sanitizer="${FUZZ_SANITIZER:-none}"
# Scratch files of the targets (stores, vaults, extracted zips) in memory when possible.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

for t in "${run[@]}"; do
  cargo +nightly fuzz build --sanitizer "$sanitizer" "$t"
done

summaries=()
failed=0
for t in "${run[@]}"; do
  work="$HOME/.cache/oibus-agent/fuzz-corpus/$t"
  artifacts="fuzz/artifacts/$t"
  mkdir -p "$work" "$artifacts" "fuzz/corpus/$t"
  log="$CARGO_TARGET_DIR/fuzz-$t.log"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=$root/fuzz/dict/$t.dict")
  marker=$(mktemp)
  echo "fuzz: $t for ${seconds}s (log: $log)"
  started=$SECONDS
  set +e
  regressions=()
  [ -d "actors/tests-data/fuzz/$t" ] && regressions=("actors/tests-data/fuzz/$t")
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" "$work" "fuzz/corpus/$t" "${regressions[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1
  status=$?
  set -e
  # "Done N runs in S second(s)" at the end of a clean run; after a crash, the last "#N" line
  # and the time the run took.
  execs='' secs=''
  read -r execs secs < <(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 \2/p' "$log" | tail -1) || true
  if [ -z "$execs" ]; then
    execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
    secs=$((SECONDS - started))
  fi
  execs=${execs:-0}
  rate=$((execs / (secs > 0 ? secs : 1)))
  new_artifacts=$(find "$artifacts" -type f -newer "$marker")
  rm -f "$marker"
  crashes=$(printf '%s' "$new_artifacts" | grep -c . || true)
  corpus=$(find "$work" -type f | wc -l)
  line="fuzz: target=$t seconds=$secs execs=$execs execs_per_s=$rate crashes=$crashes corpus=$corpus"
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    line="$line FAILED (exit $status, see $log)"
    [ -z "$new_artifacts" ] || printf '%s\n' "$new_artifacts" | sed 's/^/fuzz:   artifact /'
    grep -m1 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | sed 's/^/fuzz:   /' || true
  fi
  echo "$line"
  summaries+=("$line")
done

if [ ${#run[@]} -gt 1 ]; then printf '%s\n' "${summaries[@]}"; fi
exit "$failed"
