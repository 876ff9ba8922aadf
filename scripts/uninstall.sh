#!/usr/bin/env bash
# Remove the oibus-agent service installed by scripts/install.sh: the unit, the binaries in
# /usr/lib/oibus-agent (and /usr/bin/oibus-agent) and the sysusers.d/tmpfiles.d snippets. The state (/var/lib/oibus-agent:
# registration, vault, queues, metrics), the configuration (/etc/oibus-agent) and the user are
# kept unless --purge is given.
#
# Usage: sudo scripts/uninstall.sh [--purge] [--no-systemctl] [--root DIR]
#   (the same --no-systemctl and --root DIR as install.sh)
set -euo pipefail

purge=0 systemctl=1 dest=""
user=oibus-agent
libdir=/usr/lib/oibus-agent config_dir=/etc/oibus-agent state=/var/lib/oibus-agent
unit=/etc/systemd/system/oibus-agent.service
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) purge=1; shift ;;
    --no-systemctl) systemctl=0; shift ;;
    --root) dest="$(cd "${2:?}" && pwd)"; systemctl=0; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "uninstall: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$dest" ] && [ "$(id -u)" -ne 0 ]; then
  echo "uninstall: run as root (or use --root DIR)" >&2
  exit 1
fi
say() { echo "uninstall: $*"; }

if [ -e "$dest$unit" ]; then
  if [ "$systemctl" -eq 1 ]; then systemctl disable --now oibus-agent.service || true; fi
  rm -f "$dest$unit"
  if [ "$systemctl" -eq 1 ]; then systemctl daemon-reload; fi
  say "service removed"
fi
if [ "$(readlink "$dest/usr/bin/oibus-agent" 2>/dev/null)" = "$libdir/current/oibus-agent" ]; then
  rm -f "$dest/usr/bin/oibus-agent"
fi
rm -rf "$dest$libdir" "$dest/run/oibus-agent"
rm -f "$dest/usr/lib/sysusers.d/oibus-agent.conf" "$dest/usr/lib/tmpfiles.d/oibus-agent.conf"
say "removed $libdir and the sysusers.d and tmpfiles.d snippets"

if [ "$purge" -eq 1 ]; then
  rm -rf "$dest$state" "$dest$config_dir"
  say "removed $state (store, vault, upgrade area) and $config_dir"
  if [ -z "$dest" ] && id -u "$user" >/dev/null 2>&1; then
    userdel "$user"
    say "removed user $user"
  fi
else
  say "kept $state, $config_dir and user $user (use --purge to remove them)"
fi
