#!/usr/bin/env bash
# Soak (not in CI): the launcher and its engine against the simulator for MINUTES with
# everything at once (commands that change the configuration, log records, the metrics API,
# random faults on every route) and a disturbance every 30-60 s (SIGKILL or SIGTERM of the
# engine, SIGUSR1 or SIGHUP to the launcher, SIGTERM to the launcher then a new one). RSS and
# open descriptors of both processes and the disk use of the data folder are sampled at the
# start and every minute into a CSV, plotted into a PNG next to it. Fails on a lost item, a
# stuck actor, a protocol violation or growth beyond the thresholds documented in
# tests/soak.rs (an ignored test that does the work).
#
#   scripts/soak.sh MINUTES
#   scripts/soak.sh --plot FILE.csv     # plot an existing CSV again (FILE.png)
#
# Environment: SOAK_CSV (default soak/soak-<UTC date>.csv; the PNG gets the same name),
# SOAK_SAMPLE_SECONDS (60), SOAK_RECOVERY_SECONDS (300), SOAK_SEED (replay a run),
# SOAK_EXEC_DELAY_MS (100), SOAK_LOG (keep the full output in this file).
set -euo pipefail
caller="$PWD"
cd "$(dirname "$0")/.."

# plot CSV PNG TITLE: the three panels of a soak CSV (columns: CSV_HEADER in tests/soak.rs).
plot() {
  gnuplot <<GNUPLOT
set terminal pngcairo size 1000,900 font ",10"
set output "$2"
set datafile separator ","
set multiplot layout 3,1 title "oibus-agent soak, $3 ($(basename "$1"))"
set grid
set key bottom right
set xlabel "minutes"
set ylabel "RSS (MiB)"
set yrange [0:*]
plot "< tail -n +2 '$1'" using (\$1/60):(\$4/1024) with linespoints title "engine", \
     "" using (\$1/60):(\$8/1024) with linespoints title "launcher"
set ylabel "open descriptors"
plot "< tail -n +2 '$1'" using (\$1/60):5 with linespoints title "engine", \
     "" using (\$1/60):6 with linespoints title "engine, RocksDB tables", \
     "" using (\$1/60):9 with linespoints title "launcher"
set ylabel "data folder (MiB)"
set yrange [*:*]
set y2label "commands ended"
set y2tics
plot "< tail -n +2 '$1'" using (\$1/60):(\$10/1024) with linespoints title "disk use", \
     "" using (\$1/60):12 axes x1y2 with linespoints title "commands ended"
unset multiplot
GNUPLOT
}

if [ "${1:-}" = --plot ]; then
  csv="${2:-}"
  case "$csv" in /*) ;; *) csv="$caller/$csv" ;; esac
  [ -s "$csv" ] || { echo "usage: scripts/soak.sh --plot FILE.csv" >&2; exit 64; }
  scripts/setup.sh gnuplot-nox
  plot "$csv" "${csv%.csv}.png" "$(($(tail -n 1 "$csv" | cut -d, -f1) / 60)) min"
  echo "png: ${csv%.csv}.png"
  exit 0
fi

minutes="${1:-}"
case "$minutes" in
  '' | *[!0-9]* | 0) echo "usage: scripts/soak.sh MINUTES" >&2; exit 64 ;;
esac

scripts/setup.sh gnuplot-nox
. scripts/env.sh
. scripts/report.sh

if [ -n "${SOAK_CSV:-}" ]; then
  csv="$SOAK_CSV"
  case "$csv" in /*) ;; *) csv="$caller/$csv" ;; esac
else
  csv="$PWD/soak/soak-$(date -u +%Y%m%d-%H%M%S).csv"
fi
mkdir -p "$(dirname "$csv")"
png="${csv%.csv}.png"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
report="$work/report.txt"
log="${SOAK_LOG:-$work/output.log}"

# Bounded by its phases (registration <= 120 s, MINUTES, recovery); nextest gets a deadline
# above that instead of the suite's 3 minutes.
recovery="${SOAK_RECOVERY_SECONDS:-300}"
limit=$((120 + minutes * 60 + recovery + 600))
cat >"$work/nextest.toml" <<TOML
[profile.default]
slow-timeout = { period = "${limit}s", terminate-after = 1 }
TOML

status=0
SOAK_MINUTES="$minutes" SOAK_CSV="$csv" SOAK_REPORT="$report" \
  cargo nextest run --locked --config-file "$work/nextest.toml" --test main \
  --run-ignored only --no-capture -E 'test(/^soak::the_agent/)' 2>&1 | tee "$log" || status=$?

if [ -s "$csv" ]; then
  plot "$csv" "$png" "$minutes min" || echo "soak: gnuplot could not plot $csv" >&2
fi

check_report soak "$report" "$status"
echo "csv: $csv"
[ -s "$png" ] && echo "png: $png"
echo "head:"; head -n 4 "$csv"
echo "tail:"; tail -n 3 "$csv"
grep '^soak: ' "$report" | tail -n 1
if [ "$violations" -gt 0 ] || [ "$status" -ne 0 ]; then
  exit 1
fi
