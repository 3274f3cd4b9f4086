#!/usr/bin/env bash
# Benchmark: instructions `mediagraph serve` spends recording N cameras against `mediagraph run`
# recording the same N streams of the built-in test camera at the same time, counted by
# valgrind's callgrind (user-space instructions; repeatable, unlike CPU seconds on a shared VM).
# Both start under callgrind with instrumentation off (start-up, plugin loading and Activate are
# not counted), WARM seconds after the last Activate it is switched on in both for MEASURE
# seconds. Prints the totals and the ratio serve/run, then each one's top functions.
# Not a test: it asserts nothing. Everything listens on 127.0.0.1 only.
#
# usage: tests/bench/serve_instructions.sh              # N=4 WARM=30 MEASURE=60
#        N=8 MEASURE=120 tests/bench/serve_instructions.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-4}
WARM=${WARM:-30}
MEASURE=${MEASURE:-60}

cargo build --release -p mediagraph >&2
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/mediagraph
TOPOLOGY=$PWD/topologies/cvr-asset/topology.json
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

instance() { # NAME URL
  printf '{"@apiVersion":"2.0","name":"%s","properties":{"topologyName":"CVRToAsset","parameters":[{"name":"rtspUrl","value":"%s"},{"name":"cacheMaxMiB","value":"64"}]}}' "$1" "$2"
}
call() { # METHOD PAYLOAD: the method's HTTP status
  curl -s -o /dev/null -m 600 -w '%{http_code}' -X POST "$API/methods/$1" -d "$2"
}

PORT=$((20000 + RANDOM % 20000))
"$BIN" camera --port "$PORT" --count "$N" >"$WORK/camera.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

VG=(valgrind --tool=callgrind --instr-atstart=no --smc-check=all-non-file)
INST=()
for i in $(seq "$N"); do
  instance "cam$i" "rtsp://127.0.0.1:$PORT/cam$i" >"$WORK/instance-$i.json"
  INST+=(--instance "$WORK/instance-$i.json")
done
RUST_LOG=warn "${VG[@]}" --callgrind-out-file="$WORK/run.callgrind" "$BIN" run "$TOPOLOGY" \
  "${INST[@]}" --data-dir "$WORK/run" --progress-secs 600 2>"$WORK/run.log" &
RUN=$!
PIDS+=($RUN)
RUST_LOG=warn "${VG[@]}" --callgrind-out-file="$WORK/serve.callgrind" "$BIN" serve \
  --data-dir "$WORK/serve" --listen 127.0.0.1:0 --progress-secs 600 >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVE=$!
PIDS+=($SERVE)
API=
for _ in $(seq 600); do
  API=$(sed -n 's|^serve: listening on \(http://[^/]*\)/.*|\1|p' "$WORK/serve.out")
  [ -n "$API" ] && break
  sleep 0.5
done
[ -n "$API" ] || { echo "serve did not start:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
[ "$(call GraphTopologySet "$(cat "$TOPOLOGY")")" = 201 ] || { echo "GraphTopologySet failed" >&2; exit 1; }
for i in $(seq "$N"); do
  call GraphInstanceSet "$(instance "cam$i" "rtsp://127.0.0.1:$PORT/cam$i")" >/dev/null
  call GraphInstanceActivate "{\"@apiVersion\":\"2.0\",\"name\":\"cam$i\"}" >/dev/null
done
sleep "$WARM"
callgrind_control -i on "$RUN" >/dev/null 2>&1
callgrind_control -i on "$SERVE" >/dev/null 2>&1
sleep "$MEASURE"
callgrind_control -i off "$RUN" >/dev/null 2>&1
callgrind_control -i off "$SERVE" >/dev/null 2>&1
frames=$(curl -s "$API/status" | jq '[.instances[].sinks[0].frames // 0] | add')
kill -INT "$RUN"
kill -TERM "$SERVE"
wait "$RUN" "$SERVE" 2>/dev/null || true

total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
run_ir=$(total "$WORK/run.callgrind")
serve_ir=$(total "$WORK/serve.callgrind")
awk -v n="$N" -v m="$MEASURE" -v r="$run_ir" -v s="$serve_ir" -v f="$frames" 'BEGIN {
  printf "recording %d cameras for %d s (serve recorded %d frames in all): run %.1f M, serve %.1f M instructions per camera-minute, serve/run %.4f\n",
    n, m, f, r / n / (m / 60) / 1e6, s / n / (m / 60) / 1e6, s / r }'
for p in run serve; do
  echo "--- $p: top functions"
  callgrind_annotate "$WORK/$p.callgrind" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | sed -n '2,11p' | cut -c1-160
done
