# Sourced by the scripts: one target directory outside the clone, so a fresh clone (and CI)
# reuses the RocksDB C++ build (~12 min cold on 2 cores) instead of starting over.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/oibus-agent/target}"
mkdir -p "$CARGO_TARGET_DIR"
# Tools scripts/setup.sh fetches outside the package manager (promtool).
case ":$PATH:" in
  *":$HOME/.cache/oibus-agent/bin:"*) ;;
  *) export PATH="$HOME/.cache/oibus-agent/bin:$PATH" ;;
esac
