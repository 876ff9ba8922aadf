#!/usr/bin/env bash
# Build the release asset that OIAnalytics serves for `update-version` (E9): a zip holding
# `binaries/oibus-agent`, a binary that reports VERSION (`oibus-agent --version`), which the
# agent checks before it stages the upgrade.
#
# Usage: scripts/release-zip.sh [VERSION] [--binary PATH] [--out DIR]
#   VERSION        the version the binary reports; default: the crate version (Cargo.toml)
#   --binary PATH  package this binary instead of building one (it must report VERSION)
#   --out DIR      where the zip goes; default: dist/
# Prints the zip's path and its SHA-256.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
version="" binary="" out="$root/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "release-zip: unknown option $1" >&2; exit 2 ;;
    *) version="$1"; shift ;;
  esac
done
if [ -z "$version" ]; then
  version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
fi
version="${version#v}"

if [ -z "$binary" ]; then
  # shellcheck source=scripts/env.sh
  . "$root/scripts/env.sh"
  echo "release-zip: building oibus-agent $version (release)" >&2
  (cd "$root" && OIBUS_AGENT_VERSION="$version" cargo build --release --locked --no-default-features --bin oibus-agent)
  binary="$CARGO_TARGET_DIR/release/oibus-agent"
fi
[ -x "$binary" ] || { echo "release-zip: $binary is not an executable" >&2; exit 1; }

reported="$("$binary" --version | awk '{print $NF}')"
if [ "${reported#v}" != "$version" ]; then
  echo "release-zip: $binary reports version '$reported', not '$version'" >&2
  exit 1
fi

case "$(uname -m)" in
  x86_64|amd64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  armv7l) arch=arm ;;
  *) arch="$(uname -m)" ;;
esac
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/binaries" "$out"
install -m 0755 "$binary" "$stage/binaries/oibus-agent"
zip_path="$(cd "$out" && pwd)/oibus-agent-${version}-linux_${arch}.zip"
rm -f "$zip_path"
# -X: no extra attributes. Without -y, zip stores what a link points to, never a link.
(cd "$stage" && zip -q -X -r "$zip_path" binaries)
echo "$zip_path"
sha256sum "$zip_path" | awk '{print "sha256 " $1}'
