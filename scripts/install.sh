#!/usr/bin/env bash
# Install, update or migrate oibus-agent as a systemd service, in the FHS layout:
#   /usr/lib/oibus-agent/<version>/oibus-agent  the binary, root-owned and read-only;
#   /usr/lib/oibus-agent/current -> <version>   what the unit starts (the previous version is kept)
#   /usr/bin/oibus-agent -> …/current/oibus-agent the command for operators
#   /etc/oibus-agent/agent.yaml                 the configuration (root:oibus-agent 0640; kept)
#   /var/lib/oibus-agent/                       the state (StateDirectory): store/ (registration,
#                                               command journal, queues, metrics), vault/,
#                                               api-token, upgrade/ (launcher.install_dir)
#   /run/oibus-agent/engine.pid                 (RuntimeDirectory)
#   /usr/lib/sysusers.d/oibus-agent.conf        the user and group (scripts/oibus-agent.sysusers)
#   /usr/lib/tmpfiles.d/oibus-agent.conf        the folders (scripts/oibus-agent.tmpfiles)
#   /etc/systemd/system/oibus-agent.service     (scripts/oibus-agent.service)
#
# An install in the earlier layout (the binary, update/, backup/ and upgrade.json in
# launcher.install_dir, /opt/oibus-agent by default; engine.data_dir anywhere) is migrated with
# the service stopped: the upgrade area moves to /var/lib/oibus-agent/upgrade, a data folder
# elsewhere moves to /var/lib/oibus-agent, the YAML's two paths are rewritten (the old file is
# kept as agent.yaml.old-layout), and the old folder is removed once empty. Nothing is deleted
# but the old pid file and the old copy of the packaged binary.
#
# Usage: sudo scripts/install.sh [--binary PATH] [--no-start] [--no-systemctl] [--root DIR]
#   --binary        the oibus-agent binary; default: the release build ($CARGO_TARGET_DIR/release)
#   --no-start      install and enable, but do not start
#   --no-systemctl  never call systemctl (no running systemd: an image build); the user, the
#                   folders and the ownership are still set up
#   --root DIR      install under DIR instead of / (DESTDIR: a package build, the tests): files
#                   only, no user, no chown, no systemctl; the folders of the tmpfiles snippet are
#                   made with their modes
set -euo pipefail

root_dir="$(cd "$(dirname "$0")/.." && pwd)"
binary="" start=1 systemctl=1 dest=""
user=oibus-agent
libdir=/usr/lib/oibus-agent config=/etc/oibus-agent/agent.yaml state=/var/lib/oibus-agent
upgrade="$state/upgrade" unit=/etc/systemd/system/oibus-agent.service
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="${2:?}"; shift 2 ;;
    --no-start) start=0; shift ;;
    --no-systemctl) systemctl=0; shift ;;
    --root) dest="$(mkdir -p "${2:?}" && cd "$2" && pwd)"; systemctl=0; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "install: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$dest" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install: run as root (or use --root DIR for a files-only install)" >&2
  exit 1
fi
if [ -z "$binary" ]; then
  binary="${CARGO_TARGET_DIR:-$HOME/.cache/oibus-agent/target}/release/oibus-agent"
fi
[ -x "$binary" ] || { echo "install: no executable at $binary (build it, or pass --binary)" >&2; exit 1; }
version="$("$binary" --version | awk '{print $NF}')"
version="${version#v}"
[ -n "$version" ] || { echo "install: $binary --version says nothing" >&2; exit 1; }

say() { echo "install: $*"; }
# `yaml_value KEY`: the value of the first `  KEY:` line of the existing configuration.
yaml_value() {
  sed -n "s/^  $1:[[:space:]]*\([^#[:space:]]*\).*/\1/p" "$dest$config" 2>/dev/null | head -n1
}
# Whether the upgrade marker in DIR says no upgrade is under way (absent, committed, rolled back).
upgrade_settled() {
  [ ! -e "$1/upgrade.json" ] || grep -Eq '"step"[[:space:]]*:[[:space:]]*"(committed|rolled_back)"' "$1/upgrade.json"
}
# Whether the last upgrade in DIR was committed (its binary is an upgrade from OIAnalytics).
upgrade_committed() {
  [ -e "$1/upgrade.json" ] && grep -Eq '"step"[[:space:]]*:[[:space:]]*"committed"' "$1/upgrade.json"
}

# 1. The user and group (sysusers.d), then the folders (tmpfiles.d).
install -D -m 0644 "$root_dir/scripts/oibus-agent.sysusers" "$dest/usr/lib/sysusers.d/oibus-agent.conf"
install -D -m 0644 "$root_dir/scripts/oibus-agent.tmpfiles" "$dest/usr/lib/tmpfiles.d/oibus-agent.conf"
if [ -z "$dest" ]; then
  systemd-sysusers /usr/lib/sysusers.d/oibus-agent.conf
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/oibus-agent.conf
else
  # The snippet's `d PATH MODE USER GROUP` lines, without the ownership.
  grep -E '^d[[:space:]]' "$root_dir/scripts/oibus-agent.tmpfiles" | while read -r _ path mode _; do
    install -d -m "$mode" "$dest$path"
  done
fi

# 2. Migration from the earlier layout, with the service stopped.
if [ "$systemctl" -eq 1 ] && systemctl is-active --quiet oibus-agent.service 2>/dev/null; then
  say "stopping oibus-agent"
  systemctl stop oibus-agent.service
fi
migrated=0
if [ -e "$dest$config" ]; then
  old_upgrade="$(yaml_value install_dir)"; old_upgrade="${old_upgrade:-/opt/oibus-agent}"
  old_data="$(yaml_value data_dir)"; old_data="${old_data:-$state}"
  for p in "$old_upgrade" "$old_data"; do
    case "$p" in /?*) ;; *) echo "install: $config holds a relative or empty path ($p); fix it first" >&2; exit 1 ;; esac
  done
  if [ "$old_data" != "$state" ] && [ -d "$dest$old_data" ]; then
    say "migrating the data folder $old_data to $state"
    for entry in "$dest$old_data"/* "$dest$old_data"/.[!.]*; do
      [ -e "$entry" ] || continue
      target="$dest$state/$(basename "$entry")"
      # An empty folder the tmpfiles snippet just made gives way.
      if [ -d "$target" ]; then rmdir "$target" 2>/dev/null || true; fi
      if [ -e "$target" ]; then
        echo "install: $target exists already; not overwriting it with $entry (move one aside and run again)" >&2
        exit 1
      fi
      mv "$entry" "$target"
    done
    rmdir "$dest$old_data" 2>/dev/null || say "kept $old_data: it holds something else"
    case "$old_upgrade" in "$old_data"/*) old_upgrade="$state/${old_upgrade#"$old_data"/}" ;; esac
    migrated=1
  fi
  if [ "$old_upgrade" != "$upgrade" ] && [ -d "$dest$old_upgrade" ]; then
    say "migrating the upgrade area $old_upgrade to $upgrade"
    install -d -m 0750 "$dest$upgrade"
    rm -f "$dest$old_upgrade/engine.pid"
    # The binary that ran: kept if an upgrade is under way (the launcher resumes it from the
    # new place) or OIAnalytics upgraded the agent past the version installed below (step 3).
    if [ -e "$dest$old_upgrade/bin/oibus-agent" ]; then
      install -d -m 0750 "$dest$upgrade/bin"
      mv "$dest$old_upgrade/bin/oibus-agent" "$dest$upgrade/bin/oibus-agent"
    fi
    rmdir "$dest$old_upgrade/bin" 2>/dev/null || true
    for entry in "$dest$old_upgrade"/* "$dest$old_upgrade"/.[!.]*; do
      [ -e "$entry" ] || continue
      name="$(basename "$entry")"
      if [ -e "$dest$upgrade/$name" ]; then
        echo "install: $upgrade/$name exists already; not overwriting it with $old_upgrade/$name" >&2
        exit 1
      fi
      mv "$entry" "$dest$upgrade/$name"
    done
    rmdir "$dest$old_upgrade" 2>/dev/null || say "kept $old_upgrade: it holds something else"
    migrated=1
  fi
  if [ "$migrated" -eq 1 ]; then
    cp -p "$dest$config" "$dest$config.old-layout"
    sed -i -e "s#^\(  install_dir:[[:space:]]*\)[^#[:space:]]*#\1$upgrade#" \
      -e "s#^\(  data_dir:[[:space:]]*\)[^#[:space:]]*#\1$state#" "$dest$config"
    say "configuration: launcher.install_dir $upgrade, engine.data_dir $state (the old one is $config.old-layout)"
  fi
fi

# 3. The binary: a versioned folder, and `current` switched atomically. A binary in the upgrade
# area gives way to it, unless an upgrade is under way or it is a committed upgrade from
# OIAnalytics to a newer version.
install -d -m 0755 "$dest$libdir" "$dest$libdir/$version"
install -m 0755 "$binary" "$dest$libdir/$version/oibus-agent.new"
mv -f "$dest$libdir/$version/oibus-agent.new" "$dest$libdir/$version/oibus-agent"
previous="$(readlink "$dest$libdir/current" 2>/dev/null || true)"
[ "$previous" != "$version" ] || previous=""
ln -sfn "$version" "$dest$libdir/.current.new"
mv -Tf "$dest$libdir/.current.new" "$dest$libdir/current"
for old in "$dest$libdir"/*; do
  name="$(basename "$old")"
  # Never through `current` (a link: rm -rf current/ would empty the version it points to).
  [ -L "$old" ] || [ ! -d "$old" ] || [ "$name" = "$version" ] || [ "$name" = "$previous" ] \
    || rm -rf -- "$old"
done
# The command on the PATH, for operators (`oibus-agent status`).
install -d -m 0755 "$dest/usr/bin"
ln -sfn "$libdir/current/oibus-agent" "$dest/usr/bin/oibus-agent"
say "binary: $libdir/current/oibus-agent -> $version${previous:+ (previous: $previous)}, on the PATH as /usr/bin/oibus-agent"
upgraded="$dest$upgrade/bin/oibus-agent"
if [ -e "$upgraded" ] && upgrade_settled "$dest$upgrade"; then
  theirs="$("$upgraded" --version 2>/dev/null | awk '{print $NF}')"; theirs="${theirs#v}"
  if upgrade_committed "$dest$upgrade" && [ -n "$theirs" ] && [ "$theirs" != "$version" ] \
    && [ "$(printf '%s\n%s\n' "$version" "$theirs" | sort -V | tail -n1)" = "$theirs" ]; then
    say "keeping $upgrade/bin/oibus-agent: OIAnalytics upgraded the agent to $theirs, newer than $version"
  else
    rm -f "$upgraded"
    say "removed $upgrade/bin/oibus-agent (${theirs:-unknown version}): $version runs"
  fi
fi

# 4. The configuration (kept if present).
if [ -e "$dest$config" ]; then
  say "keeping the existing configuration $config"
else
  install -m 0640 "$root_dir/config/agent.yaml" "$dest$config"
  say "configuration written to $config (edit oianalytics.host to register)"
fi

# 5. Ownership: the state belongs to the service user, the configuration to root.
if [ -z "$dest" ]; then
  chown root:"$user" "$config" "$(dirname "$config")"
  chmod 0640 "$config"
  chown -R "$user:$user" "$state"
  runuser -u "$user" -- "$libdir/current/oibus-agent" check-config --config "$config" >/dev/null
fi

# 6. The systemd unit.
install -D -m 0644 "$root_dir/scripts/oibus-agent.service" "$dest$unit"
say "unit: $unit"
if [ "$systemctl" -eq 1 ]; then
  systemctl daemon-reload
  systemctl enable oibus-agent.service
  if [ "$start" -eq 1 ]; then
    systemctl restart oibus-agent.service
    say "started; follow it with: journalctl -u oibus-agent -f"
  fi
else
  say "systemctl not called (--no-systemctl or --root)"
fi
