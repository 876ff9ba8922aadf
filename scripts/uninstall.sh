#!/usr/bin/env bash
# Remove the oibus-agent service installed by scripts/install.sh. The data folder, the
# configuration and the system user are kept unless --purge is given.
#
# Usage: sudo scripts/uninstall.sh [--purge] [--config FILE] [--prefix DIR] [--data DIR]
#                                  [--user NAME] [--root DIR]
#   (same defaults and --root dry run as install.sh)
set -euo pipefail

config=/etc/oibus-agent/agent.yaml prefix=/opt/oibus-agent data=/var/lib/oibus-agent
user=oibus-agent purge=0 dest=""
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) purge=1; shift ;;
    --config) config="${2:?}"; shift 2 ;;
    --prefix) prefix="${2:?}"; shift 2 ;;
    --data) data="${2:?}"; shift 2 ;;
    --user) user="${2:?}"; shift 2 ;;
    --root) dest="$(cd "${2:?}" && pwd)"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "uninstall: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$dest" ] && [ "$(id -u)" -ne 0 ]; then
  echo "uninstall: run as root (or use --root DIR for a dry run)" >&2
  exit 1
fi
say() { echo "uninstall: $*"; }
run() { if [ -n "$dest" ]; then say "(dry run) $*"; else "$@"; fi; }

unit="$dest/etc/systemd/system/oibus-agent.service"
if [ -e "$unit" ]; then
  run systemctl disable --now oibus-agent.service || true
  rm -f "$unit"
  run systemctl daemon-reload
  say "service removed"
fi
# Never remove "/" or an empty path by mistake.
case "$prefix" in /?*) rm -rf "$dest$prefix"; say "removed $prefix" ;; esac

if [ "$purge" -eq 1 ]; then
  case "$data" in /?*) rm -rf "$dest$data"; say "removed $data (store, vault)" ;; esac
  rm -f "$dest$config"
  rmdir "$(dirname "$dest$config")" 2>/dev/null || true
  say "removed $config"
  if [ -z "$dest" ] && id -u "$user" >/dev/null 2>&1; then
    userdel "$user"
    say "removed user $user"
  fi
else
  say "kept $data, $config and user $user (use --purge to remove them)"
fi
