#!/usr/bin/env bash
# Benchmarks (not CI): builds the optimised binary and tests, measures every figure of the
# README's performance table RUNS times, prints the medians as a markdown table and writes it,
# with the machine description, to bench/results.md.
#
#   scripts/bench.sh                       # release profile, 3 runs of everything
#   RUNS=5 scripts/bench.sh                # more repetitions (the median is reported)
#   BENCH_ONLY="startup commands" scripts/bench.sh   # a subset of: disk startup commands logs
#                                          # metrics sim rollback data protocols opcua
#                                          # (figures not measured keep their earlier runs)
#   BENCH_ONLY=coldtest scripts/bench.sh   # once: scripts/test.sh in a fresh clone of HEAD
#                                          # with an empty target dir (about half an hour)
#   BENCH_PROFILE=dev scripts/bench.sh     # the debug build the tests use (slower figures)
#
# Each benchmark prints `BENCH <name> <value> <unit>` lines; this script collects them. The
# library's own (metrics) are the `harness = false` bench targets in `actors/benches/`, run with
# `cargo bench`; the end-to-end ones (commands, logs, sim, rollback) need the simulator or a second
# binary and stay `#[ignore]`d tests in `tests/`, run with nextest.
# Run it on an otherwise idle machine: the figures are wall-clock rates on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh valgrind # valgrind: the heap profile of the idle engine (startup group)
. scripts/env.sh
profile="${BENCH_PROFILE:-release}"
runs="${RUNS:-3}"
only="${BENCH_ONLY:-disk startup commands logs metrics sim rollback data protocols opcua}"
if [ "$profile" = release ]; then flag=--release; dir=release; else flag=; dir=debug; fi
# `cargo bench` builds with the bench profile (release settings) unless told otherwise.
if [ "$profile" = release ]; then bench_flag=; else bench_flag="--profile $profile"; fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# The binary that ships (scripts/release-zip.sh: no simulator) runs the agent; the default
# build, with the simulator, plays OIAnalytics.
cargo build --locked $flag --no-default-features --bin oibus-agent
shipped="$work/oibus-agent"
cp "$CARGO_TARGET_DIR/$dir/oibus-agent" "$shipped"
cargo build --locked $flag --bin oibus-agent
# The end-to-end benchmarks are all in the `main` test binary; the unit-test binaries are not
# built (each costs a whole-program LTO link).
cargo nextest run --locked $flag -p oibus-agent --test main --no-run
cargo bench --locked $bench_flag -p oibus-actors --benches --no-run
bin="$CARGO_TARGET_DIR/$dir/oibus-agent"

figures="$work/figures"   # one "name value unit" line per measurement
: > "$figures"
wanted() { [[ " $only " == *" $1 "* ]]; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
smaps_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$2/smaps_rollup"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
polls() {
  curl -s "$1/admin/requests" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["routes"].get("commands-pending",{}).get("count",0))'
}

# Resident memory of the launcher ($1) and the engine ($2) by owner, from /proc/<pid>/smaps:
# the binary's code, its read-only data, heap, thread stacks, each shared library.
owners() {
  python3 - "$@" <<'PY'
import collections, re, sys
def owners(pid):
    rss, pss = collections.Counter(), collections.Counter()
    name = None
    for line in open(f"/proc/{pid}/smaps"):
        head = re.match(r"^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$", line)
        if head:
            perms, path = head.groups()
            base = path.rsplit("/", 1)[-1] if path else ""
            if base.startswith("oibus-agent"):
                name = "binary: code" if "x" in perms else "binary: data and relocations" if "w" in perms else "binary: read-only data"
            elif path == "[heap]":
                name = "heap (brk)"
            elif path.startswith("[stack"):
                name = "main thread stack"
            elif path == "" :
                name = "anonymous maps (thread stacks, malloc arenas, RocksDB)"
            elif path.startswith("["):
                name = path
            else:
                name = re.sub(r"[-.]\d.*$", "", base) or base
            continue
        field = re.match(r"^(Rss|Pss):\s+(\d+) kB", line)
        if field and name:
            (rss if field.group(1) == "Rss" else pss)[name] += int(field.group(2))
    return rss, pss
print("| owner | launcher RSS KiB | engine RSS KiB | PSS KiB (both) |")
print("|---|---|---|---|")
(lr, lp), (er, ep) = owners(sys.argv[1]), owners(sys.argv[2])
total = collections.Counter()
for k in set(lr) | set(er):
    total[k] = lr[k] + er[k]
for k, v in total.most_common(10):
    print(f"| {k} | {lr[k]:,} | {er[k]:,} | {lp[k] + ep[k]:,} |")
print(f"| **all** | **{sum(lr.values()):,}** | **{sum(er.values()):,}** | **{sum(lp.values()) + sum(ep.values()):,}** |")
PY
}
# The top allocation sites of massif's peak snapshot: the first level of ms_print's tree.
heap_sites() {
  python3 -c '
import re, sys
blocks, current = [], None
for line in sys.stdin:
    if re.match(r"^\d+\.\d+% \([\d,]+B\) \(heap allocation functions\)", line):
        current = [line.rstrip()]
        blocks.append(current)
    elif current is not None and line.startswith("->"):
        current.append(line.rstrip()[:160])
    elif current is not None and not line.strip():
        current = None
size = lambda b: int(re.search(r"\(([\d,]+)B\)", b[0]).group(1).replace(",", ""))
peak = max(blocks, key=size) if blocks else ["no detailed snapshot"]
print("\n".join(peak[:16]))'
}

first_poll_ms() {
  curl -s "$1/admin/requests" | python3 -c '
import datetime, json, sys
t0 = int(sys.argv[1])
def ns(at):  # RFC 3339 with nanoseconds, UTC
    whole, frac = at.rstrip("Z").split(".")
    secs = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc).timestamp()
    return int(secs) * 10**9 + int(frac.ljust(9, "0"))
recent = json.load(sys.stdin)["routes"]["commands-pending"]["recent"]
print((min(ns(r["at"]) for r in recent if ns(r["at"]) > t0) - t0) // 10**6)' "$2"
}

# Start-up and idle memory of a registered agent under its launcher.
if wanted disk; then
  # What a synced write costs on this disk: the floor under every fsync the agent promises.
  for i in $(seq "$runs"); do
    python3 - "$CARGO_TARGET_DIR" >> "$figures" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
took = []
for _ in range(1000):
    os.write(fd, b"x" * 4096)
    began = time.perf_counter()
    os.fdatasync(fd)
    took.append(time.perf_counter() - began)
os.close(fd)
os.unlink(path)
took.sort()
print(f"fsync_p50_ms {took[500] * 1e3:.3f} ms")
print(f"fsync_p99_ms {took[990] * 1e3:.3f} ms")
PY
  done
fi

if wanted coldtest; then
  # The README's test command as CI runs it, but with nothing built: a fresh clone of HEAD and
  # an empty target dir. Once, not RUNS times.
  git clone -q . "$work/cold"
  began=$(date +%s)
  (cd "$work/cold" && CARGO_TARGET_DIR="$work/cold-target" scripts/test.sh) > "$work/coldtest.log" 2>&1 || {
    tail -40 "$work/coldtest.log"; echo "the cold scripts/test.sh failed"; exit 1; }
  echo "cold_test_min $(python3 -c "print(round(($(date +%s) - $began) / 60, 1))") min" >> "$figures"
  rm -rf "$work/cold-target"
fi

if wanted startup; then
  "$bin" sim --listen 127.0.0.1:0 --auto-complete 100ms > "$work/sim.out" 2> "$work/sim.err" &
  for _ in $(seq 100); do grep -q listening "$work/sim.out" && break; sleep 0.1; done
  sim=$(sed -n 's/^listening on //p' "$work/sim.out")
  for i in $(seq "$runs"); do
    home="$work/agent-$i"; mkdir -p "$home"; api=$(port)
    cat > "$home/agent.yaml" <<YAML
engine: { name: bench, data_dir: $home/data, api: { listen: 127.0.0.1:$api }, log: { console: warn, oia: silent } }
oianalytics: { host: $sim, key_size: 2048, intervals: { command_refresh: 1s, registration_check: 1s } }
launcher: { install_dir: $home/install }
YAML
    # Register once: key generation and the completion check are not start-up costs.
    "$shipped" run --config "$home/agent.yaml" 2> "$home/first.log" & pid=$!
    until curl -sf "http://127.0.0.1:$api/status" | grep -q '"REGISTERED"'; do sleep 0.2; done
    kill -TERM $pid; wait $pid || true
    # Time from exec of the launcher to the first commands/pending the simulator sees.
    before=$(polls "$sim")
    t0=$(date +%s%N)
    "$shipped" launch --config "$home/agent.yaml" 2> "$home/launch.log" & lpid=$!
    while [ "$(polls "$sim")" -le "$before" ]; do sleep 0.02; done
    # The simulator stamps each request on arrival: the first poll after t0, not when this
    # loop (curl and python, tens of ms each) happened to notice it.
    echo "startup_ms $(first_poll_ms "$sim" "$t0") ms" >> "$figures"
    sleep 10 # idle
    epid=$(pgrep -P $lpid | head -1)
    echo "idle_rss_mib $(( ($(rss_kib $lpid) + $(rss_kib "$epid")) / 1024 )) MiB" >> "$figures"
    # RSS counts the binary's text pages, which both processes share, twice; PSS once.
    echo "idle_pss_mib $(( ($(smaps_kib Pss $lpid) + $(smaps_kib Pss "$epid")) / 1024 )) MiB" >> "$figures"
    echo "idle_anon_mib $(( ($(smaps_kib Anonymous $lpid) + $(smaps_kib Anonymous "$epid")) / 1024 )) MiB" >> "$figures"
    [ "$i" = "$runs" ] && owners "$lpid" "$epid" > "$work/owners.md"
    kill -TERM $lpid; wait $lpid || true
  done
  # The engine's heap by allocation site: massif on the registered engine, idle for 20 s.
  home="$work/agent-$runs"
  valgrind --tool=massif --massif-out-file="$work/massif.out" "$shipped" run --config "$home/agent.yaml" \
    2> "$home/massif.log" & vpid=$!
  sleep 20; kill -TERM $vpid; wait $vpid || true
  { echo "# Idle memory of the registered agent"
    echo
    echo "Written by \`scripts/bench.sh\` (startup group) on \`$(git rev-parse --short HEAD)\`, $profile build."
    echo
    cat "$work/owners.md"
    echo
    echo "## The engine's heap at massif's peak (top allocation sites, idle 20 s)"
    echo
    echo '```'
    ms_print "$work/massif.out" | heap_sites
    echo '```'; } > bench/idle-memory.md
  echo "binary_mib $(( $(stat -c %s "$shipped") / 1048576 )) MiB" >> "$figures"
  # Without the symbol table too (backtraces would lose their function names).
  strip -o "$work/stripped" "$shipped"
  echo "binary_stripped_mib $(( $(stat -c %s "$work/stripped") / 1048576 )) MiB" >> "$figures"
  kill %1 2>/dev/null || true
fi

# The benchmarks, each run `runs` times, one at a time: a bench target (`cargo bench`), or the
# ignored end-to-end tests a nextest filter selects.
declare -A benches=(
  [metrics]='metrics'
)
declare -A filters=(
  [commands]='test(/commands::bench_10k/)'
  [logs]='test(/logs::bench::/)'
  [sim]='test(/sim::status_and_log_routes/)'
  [rollback]='test(/launcher::new_binary_that_exits_at_once/)'
  [data]='test(/data_bench::data_plane_figures/)'
  [protocols]='test(/protocols_bench::protocol_figures/)'
  [opcua]='test(/opcua_bench::opcua_subscription_figures/)'
)
run_group() {
  if [ -n "${benches[$1]:-}" ]; then
    cargo bench --locked $bench_flag -p oibus-actors --bench "${benches[$1]}"
  else
    cargo nextest run --locked $flag -p oibus-agent --test main --run-ignored all --no-capture -j 1 \
      -E "${filters[$1]}"
  fi
}
for group in commands logs metrics sim rollback data protocols opcua; do
  wanted "$group" || continue
  for i in $(seq "$runs"); do
    echo "== $group, run $i of $runs"
    run_group "$group" > "$work/$group-$i.log" 2>&1 || {
      tail -40 "$work/$group-$i.log"; echo "benchmark $group failed"; exit 1; }
    grep -h '^BENCH ' "$work/$group-$i.log" | sed 's/^BENCH //' | tee -a "$figures"
  done
done

mkdir -p bench
# The hand-written history below the marker survives the rewrite of the table.
history="$work/history.md"
sed -n '/^<!-- history:/,$p' bench/results.md > "$history" 2>/dev/null || : > "$history"
cp bench/results.md "$work/previous.md" 2>/dev/null || : > "$work/previous.md"
python3 - "$figures" "$runs" "$profile" "$work/previous.md" > bench/results.md <<'PY'
import collections, os, platform, re, statistics, subprocess, sys, datetime
figures, runs, profile, previous = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
# name: (figure, goal, OIBus 3.8.8). A goal is "≤ N unit" or "≥ N unit", N in the figure's own unit; the
# table marks it met or missed from the median.
rows = {
    "fsync_p50_ms": ("Disk: `fdatasync` of a 4 KiB write, p50 (the floor under every synced write)", "", ""),
    "fsync_p99_ms": ("Disk: … p99", "", ""),
    "cold_test_min": ("Cold `scripts/test.sh`: fresh clone, empty target dir, 2 cores", "≤ 8 min", ""),
    "idle_rss_mib": ("Idle RSS, launcher + engine, registered", "≤ 12 MiB", "≈ 330 MB"),
    "idle_pss_mib": ("… proportional (PSS: shared pages counted once)", "≤ 12 MiB", ""),
    "idle_anon_mib": ("… of it anonymous (heap, stacks: the agent's own)", "≤ 12 MiB", ""),
    "startup_ms": ("Launcher start → first `commands/pending`", "≤ 100 ms", "2.4 s"),
    "binary_mib": ("Shipped binary (no simulator; debuginfo stripped, symbols kept)", "", ""),
    "binary_stripped_mib": ("… fully stripped", "≤ 12 MiB", ""),
    "commands_per_s": ("10,000 queued `create-scan-mode`: fetch → last COMPLETED received", "≥ 10000 /s", "12.8/s"),
    "commands_wall_per_s": ("… from queueing, with the wait for the next poll (≤ 1 s)", "", ""),
    "command_engine_cpu": ("Engine CPU per command", "≤ 50 µs", ""),
    "command_engine_peak_rss": ("Engine peak RSS over the 10,000 commands", "≤ 24 MiB", "8.5 GB"),
    "log_accept_per_s": ("Log records accepted into the durable queue", "≥ 200000 /s", ""),
    "log_delivery_per_s": ("Log records delivered to OIA", "≥ 400000 /s", "lost in outages"),
    "log_delivery_spread_pct": ("… run-to-run spread (max − min) / median", "≤ 20 %", ""),
    "log_backlog_rss_idle": ("RSS with a 1M-record log backlog, idle", "≤ 64 MiB", ""),
    "log_backlog_rss_delivering": ("… while delivering it", "≤ 64 MiB", ""),
    "metric_counts_per_s": ("Metric counts, one thread", "", ""),
    "metric_flush_10k_series_ms": ("Metrics flush of 10k dirty series (CPU)", "≤ 10 ms", ""),
    "metric_store_flush_10k_series_ms": ("… folded, encoded and written to RocksDB", "≤ 25 ms", ""),
    "sim_commands_status_per_s": ("Simulator `commands/status`, 2 cores", "≥ 20000 /s", ""),
    "sim_logs_per_s": ("Simulator `logs`, 2 cores", "≥ 20000 /s", ""),
    "rollback_ms": ("Rollback: crash in probation → old version healthy", "≤ 2000 ms", "30 s timer"),
    "upgrade_exit76_to_healthy_ms": ("Upgrade: exit 76 → new version healthy", "", ""),
    "data_into_cache_values_per_s": ("Data: values committed (fsync) into a north cache", "≥ 2000000 /s", ""),
    "data_backlog_rss_mib": ("Data: RSS with a 1M-value backlog", "≤ 48 MiB", ""),
    "data_drain_values_per_s": ("Data: backlog drained to OIA after an outage", "", ""),
    "data_drain_rss_mib": ("Data: peak RSS while draining", "≤ 48 MiB", ""),
    "data_delivered_values_per_s": ("Data: values delivered to OIA, source and north running", "≥ 1000000 /s", ""),
    "data_latency_p50_ms": ("Data: value timestamp → received by OIA, p50", "", ""),
    "data_latency_p99_ms": ("Data: … p99", "", ""),
    "modbus_reads_per_s": ("Modbus: reads of one register, one after the other (tokio-modbus server)", "", ""),
    "modbus_values_per_s": ("Modbus: values/s, reads of 100 registers batched in one request", "", ""),
    "modbus_rss_mib": ("Modbus: process RSS after the reads (server included)", "", ""),
    "mqtt_messages_per_s": ("MQTT: QoS 1 messages from mosquitto committed (fsync) into a north cache", "", ""),
    "mqtt_rss_mib": ("MQTT: process RSS then", "", ""),
    "opcua_1000_values_per_s": ("OPC UA: values/s into the cache, 1k monitored items (test server in the same process, each item changing every 100 ms)", "", ""),
    "opcua_1000_rss_mib": ("OPC UA: process RSS, 1k items (server and agent in one process)", "", ""),
    "opcua_1000_south_rss_mib": ("OPC UA: RSS the running south adds, 1k items", "", ""),
    "opcua_10000_values_per_s": ("OPC UA: values/s into the cache, 10k monitored items", "", ""),
    "opcua_10000_rss_mib": ("OPC UA: process RSS, 10k items", "", ""),
    "opcua_10000_south_rss_mib": ("OPC UA: RSS the running south adds, 10k items", "", ""),
    "opcua_50000_values_per_s": ("OPC UA: values/s into the cache, 50k monitored items (each changing every 500 ms)", "", ""),
    "opcua_50000_rss_mib": ("OPC UA: process RSS, 50k items", "", ""),
    "opcua_50000_south_rss_mib": ("OPC UA: RSS the running south adds, 50k items", "", ""),
}
# What bounds a goal this run misses: a measured limit, kept next to the figure it explains.
BOUNDS_FILE = "bench/bounds.md"
bounds = {}
if os.path.exists(BOUNDS_FILE):
    for line in open(BOUNDS_FILE):
        m = re.match(r"^- `(\w+)`: (.*)$", line.strip())
        if m:
            bounds[m.group(1)] = m.group(2)
seen = collections.defaultdict(list)
units = {}
for line in open(figures):
    name, value, unit = line.split(maxsplit=2)
    seen[name].append(float(value))
    units[name] = unit.strip()
# A partial run (BENCH_ONLY) keeps the rows it did not measure, marked as earlier.
earlier = set()
by_label = {label: name for name, (label, _, _) in rows.items()}
for line in open(previous):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) not in (5, 6) or cells[0] not in by_label or by_label[cells[0]] in seen:
        continue
    name = by_label[cells[0]]
    median = cells[1].replace(" (earlier run)", "").strip("*")
    unit = median.split(" ", 1)[1] if " " in median else ""
    try:
        seen[name] = [float(v.replace(",", "")) for v in cells[2].split(", ")]
    except ValueError:
        continue
    units[name] = unit
    earlier.add(name)
# The spread of a noisy rate is a figure of its own (the log goal bounds it).
if len(seen.get("log_delivery_per_s", [])) > 1:
    v = seen["log_delivery_per_s"]
    seen["log_delivery_spread_pct"] = [100 * (max(v) - min(v)) / statistics.median(v)]
    units["log_delivery_spread_pct"] = "%"
    # As old as the runs it is computed from.
    if "log_delivery_per_s" in earlier:
        earlier.add("log_delivery_spread_pct")
    else:
        earlier.discard("log_delivery_spread_pct")
def fmt(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}".rstrip("0").rstrip(".")
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
print(f"# Benchmark results\n")
print(f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit `{sh('git rev-parse --short HEAD')}`; profile `{profile}`; {runs} runs, median shown")
print(f"- Machine: {os.cpu_count()} CPUs ({cpu}), {int(mem) // 1048576} GiB, Linux {platform.release()}; load average at the end {os.getloadavg()[0]:.2f}")
print(f"- Toolchain: {sh('rustc --version')}\n")
def verdict(goal, median):
    if not goal:
        return "", ""
    op, target, unit = goal.split(maxsplit=2)
    met = median <= float(target) if op == "≤" else median >= float(target)
    return f"{op} {fmt(float(target))} {unit}".replace(" /s", "/s"), "✅ met" if met else "❌ missed"
print("| Figure | Now (median) | Runs | Goal | | OIBus 3.8.8 |")
print("|---|---|---|---|---|---|")
missed = []
for name in list(rows) + sorted(set(seen) - set(rows)):
    if name not in seen:
        continue
    label, goal, oibus = rows.get(name, (name, "", ""))
    values = seen[name]
    median = statistics.median(values)
    runs_text = ", ".join(fmt(v) for v in values)
    mark = " (earlier run)" if name in earlier else ""
    goal_text, met = verdict(goal, median)
    if met.endswith("missed"):
        missed.append((label, bounds.get(name, "not yet explained")))
    print(f"| {label} | **{fmt(median)} {units[name]}**{mark} | {runs_text} | {goal_text} | {met} | {oibus} |")
if missed:
    print("\n**What bounds each missed goal** (from `bench/bounds.md`, measured):\n")
    for label, why in missed:
        print(f"- {label}: {why}")
PY
if [ -s "$history" ]; then printf '\n' >> bench/results.md; cat "$history" >> bench/results.md; fi
cat bench/results.md
