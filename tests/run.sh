#!/usr/bin/env bash
# The whole test suite: builds the default plugins for wasm32-wasip2, checks formatting and
# lints, then runs every test (unit, contract, end-to-end against real peers).
# Needs the Debian packages and npm packages that .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."

# RUSTUP_AUTO_INSTALL=0 may be set, so the plugin target is added explicitly.
rustup target add wasm32-wasip2

# Test peers from npm (Azurite), pinned in tests/package-lock.json, into tests/node_modules.
npm ci --prefix tests --no-audit --no-fund --loglevel=error

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
