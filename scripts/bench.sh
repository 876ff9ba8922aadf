#!/usr/bin/env bash
# Benchmarks (not CI): idle memory and start-up of a registered agent, then the ignored
# benchmark tests (metric counts and flush, log accept/deliver/backlog RSS, commands/s through
# the simulator, simulator throughput). Each prints its own figures; README has the table.
#
#   scripts/bench.sh            # optimised build (release profile; first run compiles RocksDB -O3)
#   BENCH_PROFILE=dev scripts/bench.sh   # the debug build the tests use
#   RUNS=5 scripts/bench.sh     # repetitions of the start-up measurement (median reported)
#   BENCH_TESTS="logs::bench" scripts/bench.sh   # only some benchmark tests ("" for none)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
profile="${BENCH_PROFILE:-release}"
runs="${RUNS:-3}"
if [ "$profile" = release ]; then flag=--release; dir=release; else flag=; dir=debug; fi
cargo build --locked $flag --bin oibus-agent
bin="$CARGO_TARGET_DIR/$dir/oibus-agent"

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$bin" sim --listen 127.0.0.1:0 --auto-complete 100ms > "$work/sim.out" 2> "$work/sim.err" &
for _ in $(seq 100); do grep -q listening "$work/sim.out" && break; sleep 0.1; done
sim=$(sed -n 's/^listening on //p' "$work/sim.out")

startup=(); rss=()
for i in $(seq "$runs"); do
  home="$work/agent-$i"; mkdir -p "$home"; api=$(port)
  cat > "$home/agent.yaml" <<YAML
engine: { name: bench, data_dir: $home/data, api: { listen: 127.0.0.1:$api }, log: { console: warn, oia: silent } }
oianalytics: { host: $sim, key_size: 2048, intervals: { command_refresh: 1s, registration_check: 1s } }
launcher: { install_dir: $home/install }
YAML
  # Register once (key generation and the completion check are not start-up costs).
  "$bin" run --config "$home/agent.yaml" 2> "$home/first.log" & pid=$!
  until curl -sf "http://127.0.0.1:$api/status" | grep -q '"REGISTERED"'; do sleep 0.2; done
  kill -TERM $pid; wait $pid || true
  # Start registered: time from exec to the first commands/pending the simulator sees.
  before=$(curl -s "$sim/admin/requests" | python3 -c 'import json,sys; print(json.load(sys.stdin)["routes"].get("commands-pending",{}).get("count",0))')
  t0=$(date +%s%N)
  "$bin" launch --config "$home/agent.yaml" 2> "$home/launch.log" & lpid=$!
  while :; do
    n=$(curl -s "$sim/admin/requests" | python3 -c 'import json,sys; print(json.load(sys.stdin)["routes"].get("commands-pending",{}).get("count",0))')
    [ "$n" -gt "$before" ] && break; sleep 0.005
  done
  startup+=($(( ($(date +%s%N) - t0) / 1000000 )))
  sleep 10   # idle
  epid=$(pgrep -P $lpid | head -1)
  rss+=($(( $(rss_kib $lpid) + $(rss_kib "$epid") )))
  kill -TERM $lpid; wait $lpid || true
done
echo "start to first poll (ms), $runs runs: ${startup[*]} -> median $(printf '%s\n' "${startup[@]}" | median)"
echo "idle RSS launcher+engine (KiB), $runs runs: ${rss[*]} -> median $(printf '%s\n' "${rss[@]}" | median)"
echo "binary size: $(du -h "$bin" | cut -f1)"

# BENCH_TESTS="" skips the benchmark tests.
for t in ${BENCH_TESTS-metrics_aggregator::bench logs::bench commands::bench sim::status_and_log}; do
  echo "== $t"
  cargo nextest run --locked $flag --workspace --run-ignored only --no-capture -j 1 -E "test(/$t/)" 2>&1 \
    | grep -vE '^\s+(Compiling|Finished|Running|Starting|PASS|SKIP)' || true
done
