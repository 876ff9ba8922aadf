#!/usr/bin/env bash
# The test command: setup, formatting, lints, then every test (unit and end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# Licences, bans and sources; advisories only from a database already on disk (the RustSec
# database is on GitHub, out of reach here): copy one to $CARGO_HOME/advisory-dbs to check them.
cargo deny --locked check licenses bans sources
if compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/*/" > /dev/null; then
  cargo deny --locked check --disable-fetch advisories
else
  echo "test: NOTICE: no advisory database in ${CARGO_HOME:-$HOME/.cargo}/advisory-dbs; cargo deny advisories skipped" >&2
fi

# A release build reads no test hook (`oibus_actors::test_hooks`): the feature is not in its
# dependency graph, its binary does not even hold the variables' names, and the hooks' own test,
# built without the feature, finds them inert.
if cargo tree --locked -p oibus-agent --no-default-features -e normal,features -i oibus-actors \
  | grep -q 'feature "test-hooks"'; then
  echo "test: a release build would enable oibus-actors/test-hooks" >&2
  exit 1
fi
cargo build --locked --no-default-features --bin oibus-agent
if grep -a -q -E 'OIBUS_AGENT_(FAILPOINT|TEST_)' "$CARGO_TARGET_DIR/debug/oibus-agent"; then
  echo "test: the release binary still reads a test hook variable" >&2
  exit 1
fi
cargo nextest run --locked -p oibus-actors test_hooks

cargo nextest run --workspace --locked --no-fail-fast "$@"
