# Sourced by fault-test.sh and soak.sh: read the report file their ignored test writes
# (`VIOLATION: ...` lines, notes, one `<name>: ...` summary line).
#
# check_report NAME REPORT STATUS: stops the script when the run ended before its report;
# otherwise prints the violations and the notes, and sets `violations` to their count.
check_report() {
  local name=$1 report=$2 status=$3
  if [ ! -s "$report" ]; then
    echo "$name: the run stopped before its report (exit $status); the output above says why" >&2
    exit $((status == 0 ? 1 : status))
  fi
  echo
  violations="$(grep -c '^VIOLATION: ' "$report" || true)"
  if [ "$violations" -gt 0 ]; then
    echo "$name: $violations violations:"
    sed -n 's/^VIOLATION: /  - /p' "$report"
  fi
  grep -v '^VIOLATION: ' "$report" | grep -v "^$name: " || true
}
