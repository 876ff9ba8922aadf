#!/usr/bin/env bash
# Install what a fresh Debian machine lacks to build and test oibus-agent. Idempotent: a no-op
# when everything is present. Extra Debian packages a script needs may be named as arguments
# (scripts/soak.sh: gnuplot-nox).
set -euo pipefail

need_apt=()
# libclang for RocksDB's bindgen, a C++ compiler for RocksDB itself; mosquitto, the broker the
# MQTT tests start; chromium, the headless browser that loads the status page in its test.
for pkg in libclang-dev clang g++ make pkg-config curl mosquitto chromium "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# promtool, which checks the live /metrics exposition in the metrics test: taken out of Debian's
# prometheus package rather than installed with it, which would enable a Prometheus server here.
tools="$HOME/.cache/oibus-agent/bin"
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$tools/promtool" ]; then
  echo "setup: fetching promtool into $tools"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  deb="$(mktemp -d)"
  # apt warns that it downloads as root, not as _apt: only a failure is worth showing.
  if ! (cd "$deb" && { apt-get download prometheus \
    || { $SUDO apt-get update -qq && apt-get download prometheus; }; }) >"$deb/apt.log" 2>&1; then
    cat "$deb/apt.log" >&2
    echo "setup: could not download Debian's prometheus package (for promtool)" >&2
    exit 1
  fi
  dpkg-deb -x "$deb"/prometheus_*.deb "$deb/root"
  mkdir -p "$tools"
  install -m 0755 "$deb/root/usr/bin/promtool" "$tools/promtool"
  rm -rf "$deb"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust stable (rustup) first" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
if ! cargo deny --version >/dev/null 2>&1; then
  # Once: about 12 minutes on 2 shared cores.
  echo "setup: installing cargo-deny"
  cargo install --locked cargo-deny
fi
