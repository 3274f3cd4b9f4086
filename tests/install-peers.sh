#!/usr/bin/env bash
# Installs what the tests drive as real peers and toolchain parts: ffmpeg/ffprobe and GStreamer's
# RTSP server (Debian), Chromium (Debian, for the playback page's browser test), strace (Debian,
# the cache's power-loss ordering is checked from a syscall trace), the wasm32-wasip2 target
# (plugins), Azurite and playwright-core (npm, pinned in tests/package-lock.json, into
# tests/node_modules; playwright-core drives /usr/bin/chromium and never downloads a browser of
# its own). Node.js 20 and npm must already be on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  ffmpeg \
  gstreamer1.0-tools gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 python3-gi \
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
  chromium \
  strace \
  >/dev/null
# RUSTUP_AUTO_INSTALL=0 may be set, so the target is added explicitly.
rustup target add wasm32-wasip2
npm ci --prefix tests --no-audit --no-fund --loglevel=error
