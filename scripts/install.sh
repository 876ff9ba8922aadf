#!/usr/bin/env bash
# Install oibus-agent as a systemd service.
#
# Usage: sudo scripts/install.sh [--binary PATH] [--config FILE] [--prefix DIR] [--data DIR]
#                                [--user NAME] [--no-start] [--root DIR]
#   --binary  the oibus-agent binary; default: the release build ($CARGO_TARGET_DIR/release)
#   --config  the YAML; default /etc/oibus-agent/agent.yaml (created from config/agent.yaml
#             if missing, never overwritten)
#   --prefix  launcher.install_dir; default /opt/oibus-agent (bin/, update/, backup/)
#   --data    engine.data_dir; default /var/lib/oibus-agent
#   --user    the dedicated system user; default oibus-agent
#   --no-start  install and enable, but do not start
#   --root    install under this folder instead of / (a dry run for packaging and tests: no
#             user is created, systemctl is not called)
#
# Layout: the service user owns the install folder, because self-upgrade renames the binary
# in bin/; the configuration stays root-owned and read-only for the service.
set -euo pipefail

root_dir="$(cd "$(dirname "$0")/.." && pwd)"
binary="" config=/etc/oibus-agent/agent.yaml prefix=/opt/oibus-agent data=/var/lib/oibus-agent
user=oibus-agent start=1 dest=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="${2:?}"; shift 2 ;;
    --config) config="${2:?}"; shift 2 ;;
    --prefix) prefix="${2:?}"; shift 2 ;;
    --data) data="${2:?}"; shift 2 ;;
    --user) user="${2:?}"; shift 2 ;;
    --no-start) start=0; shift ;;
    --root) dest="$(mkdir -p "${2:?}" && cd "$2" && pwd)"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "install: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for p in "$config" "$prefix" "$data"; do
  case "$p" in /*) ;; *) echo "install: $p must be an absolute path" >&2; exit 2 ;; esac
done
if [ -z "$dest" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install: run as root (or use --root DIR for a dry run)" >&2
  exit 1
fi
if [ -z "$binary" ]; then
  binary="${CARGO_TARGET_DIR:-$HOME/.cache/oibus-agent/target}/release/oibus-agent"
fi
[ -x "$binary" ] || { echo "install: no executable at $binary (build it, or pass --binary)" >&2; exit 1; }

say() { echo "install: $*"; }
run() { if [ -n "$dest" ]; then say "(dry run) $*"; else "$@"; fi; }

# 1. The system user.
if [ -z "$dest" ] && ! id -u "$user" >/dev/null 2>&1; then
  say "creating system user $user"
  useradd --system --home-dir "$data" --no-create-home --shell /usr/sbin/nologin "$user"
fi
owner="$user:$user"
[ -n "$dest" ] && owner="$(id -u):$(id -g)"

# 2. The install folder and the binary.
install -d -m 0755 "$dest$prefix"
for d in bin update backup; do install -d -m 0750 "$dest$prefix/$d"; done
install -m 0755 "$binary" "$dest$prefix/bin/oibus-agent.new"
mv -f "$dest$prefix/bin/oibus-agent.new" "$dest$prefix/bin/oibus-agent"
chown -R "$owner" "$dest$prefix"
say "binary: $prefix/bin/oibus-agent ($("$dest$prefix/bin/oibus-agent" --version))"

# 3. The data folder.
install -d -m 0750 "$dest$data"
chown "$owner" "$dest$data"

# 4. The configuration (kept if present).
if [ -e "$dest$config" ]; then
  say "keeping the existing configuration $config"
else
  install -d -m 0755 "$(dirname "$dest$config")"
  sed -e "s#^\(  install_dir:\).*#\1 $prefix#" -e "s#^\(  data_dir:\).*#\1 $data#" \
    "$root_dir/config/agent.yaml" > "$dest$config"
  chmod 0640 "$dest$config"
  [ -n "$dest" ] || chown "root:$user" "$dest$config"
  say "configuration written to $config (edit oianalytics.host to register)"
fi
if [ -z "$dest" ]; then
  runuser -u "$user" -- "$prefix/bin/oibus-agent" check-config --config "$config" >/dev/null
fi

# 5. The systemd unit.
unit_dir="$dest/etc/systemd/system"
install -d -m 0755 "$unit_dir"
sed -e "s#@USER@#$user#g" -e "s#@PREFIX@#$prefix#g" -e "s#@CONFIG@#$config#g" -e "s#@DATA@#$data#g" \
  "$root_dir/scripts/oibus-agent.service" > "$unit_dir/oibus-agent.service"
chmod 0644 "$unit_dir/oibus-agent.service"
say "unit: /etc/systemd/system/oibus-agent.service"
run systemctl daemon-reload
run systemctl enable oibus-agent.service
if [ "$start" -eq 1 ]; then
  run systemctl restart oibus-agent.service
  say "started; follow it with: journalctl -u oibus-agent -f"
fi
