#!/usr/bin/env bash
# The whole test suite: builds the default plugins for wasm32-wasip2, checks formatting and
# lints, then runs every test (unit, contract, end-to-end against real peers).
# Installs the peers it needs when they are missing (tests/install-peers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# On a fresh machine the peers are missing: install them (CI's .ci/run always does).
if ! command -v ffprobe >/dev/null || ! command -v strace >/dev/null ||
  ! python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null ||
  ! rustup target list --installed | grep -qx wasm32-wasip2 ||
  [ ! -d tests/node_modules/azurite ] || [ ! -d tests/node_modules/playwright-core ] ||
  [ ! -x /usr/bin/chromium ]; then
  bash tests/install-peers.sh
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# host/tests/first_command.rs runs the README's first command (`cargo run --release -- demo`)
# in a fresh clone with this target dir: built here first, the clone finds every dependency
# compiled and recompiles only the workspace's own crates (while that test binary runs alone),
# so the cold release build never competes with the real-time end-to-end tests.
CARGO_TARGET_DIR=target/first-command cargo build --release -p mediagraph
cargo test --workspace
