#!/usr/bin/env bash
# Benchmark of the edge service, `mediagraph serve`, driven over HTTP with curl as a client
# would, against the built-in test camera. Reports:
#   1. Set+Activate of SETS instances (one camera each), total wall time and per instance;
#   2. method latency p50/p99 (GraphInstanceGet, GraphInstanceList, /status in turn, CALLS
#      calls, as curl's time_total) while those SETS cameras record;
#   3. resident memory (VmRSS, VmHWM) of a fresh serve holding INACTIVE inactive instances;
#   4. recording CPU of serve against run for CPU_N cameras of 720p 2 Mbit/s H.264 (the clip of
#      tests/bench/record.sh), both recording the same cameras at the same time: CPU-seconds
#      per camera-minute over DURATION s after WARMUP s, and the ratio serve/run.
# Not a test: it asserts nothing. Every server listens on 127.0.0.1 only.
#
# usage: tests/bench/serve.sh                       # SETS=100 INACTIVE=1000 CPU_N=32
#        SETS=10 INACTIVE=100 CPU_N=4 DURATION=20 WARMUP=10 CALLS=100 tests/bench/serve.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SETS=${SETS:-100}
INACTIVE=${INACTIVE:-1000}
CPU_N=${CPU_N:-32}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-15}
CALLS=${CALLS:-300}

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
HZ=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

start_camera() { # PORT COUNT [camera args...]; waits until it listens
  local port=$1 count=$2
  shift 2
  "$BIN" camera --port "$port" --count "$count" "$@" >"$WORK/camera-$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.1; done
  echo "the camera on $port did not listen" >&2
  exit 1
}

# Starts serve on DATA_DIR; sets SERVE (pid) and API (base URL).
start_serve() {
  local data=$1
  RUST_LOG=warn "$BIN" serve --data-dir "$data" --listen 127.0.0.1:0 --progress-secs 600 \
    >"$data.out" 2>"$data.log" &
  SERVE=$!
  PIDS+=($SERVE)
  for _ in $(seq 300); do
    API=$(sed -n 's|^serve: listening on \(http://[^/]*\)/.*|\1|p' "$data.out" 2>/dev/null)
    [ -n "$API" ] && return
    sleep 0.1
  done
  echo "serve did not start:" >&2
  cat "$data.log" >&2
  exit 1
}

# call METHOD PAYLOAD: the method's HTTP status (the bare route answers with it).
call() {
  curl -s -o /dev/null -w '%{http_code}' -X POST "$API/methods/$1" -d "$2"
}

instance() { # NAME URL
  printf '{"@apiVersion":"2.0","name":"%s","properties":{"topologyName":"CVRToAsset","parameters":[{"name":"rtspUrl","value":"%s"},{"name":"cacheMaxMiB","value":"64"}]}}' "$1" "$2"
}

set_topology() {
  local s
  s=$(call GraphTopologySet "$(cat "$TOPOLOGY")")
  [ "$s" = 201 ] || { echo "GraphTopologySet: HTTP $s" >&2; exit 1; }
}

stop_serve() {
  kill -TERM "$SERVE" 2>/dev/null || true
  wait "$SERVE" 2>/dev/null || true
}

# ---- 1 and 2: Set+Activate of SETS instances, then method latency while they record ----
PORT=$((20000 + RANDOM % 20000))
start_camera "$PORT" "$SETS"
start_serve "$WORK/sets"
set_topology
t0=$(now)
for i in $(seq "$SETS"); do
  s=$(call GraphInstanceSet "$(instance "cam-$i" "rtsp://127.0.0.1:$PORT/cam$i")")
  [ "$s" = 201 ] || { echo "GraphInstanceSet cam-$i: HTTP $s" >&2; exit 1; }
  s=$(call GraphInstanceActivate "{\"@apiVersion\":\"2.0\",\"name\":\"cam-$i\"}")
  [ "$s" = 200 ] || { echo "GraphInstanceActivate cam-$i: HTTP $s" >&2; exit 1; }
done
t1=$(now)
awk -v n="$SETS" -v a="$t0" -v b="$t1" 'BEGIN {
  printf "Set+Activate of %d instances: %.2f s total, %.1f ms per instance\n", n, b - a, (b - a) * 1000 / n }'

sleep 5 # every camera connected and recording
: >"$WORK/latency"
for i in $(seq "$CALLS"); do
  cam=$(( (i % SETS) + 1 ))
  case $((i % 3)) in
    0) curl -s -o /dev/null -w '%{time_total}\n' -X POST "$API/methods/GraphInstanceGet" \
         -d "{\"@apiVersion\":\"2.0\",\"name\":\"cam-$cam\"}" >>"$WORK/latency" ;;
    1) curl -s -o /dev/null -w '%{time_total}\n' -X POST "$API/methods/GraphInstanceList" \
         -d '{"@apiVersion":"2.0"}' >>"$WORK/latency" ;;
    2) curl -s -o /dev/null -w '%{time_total}\n' "$API/status" >>"$WORK/latency" ;;
  esac
done
sort -n "$WORK/latency" | awk -v n="$SETS" '{v[NR] = $1} END {
  printf "method latency with %d active cameras (%d calls: Get, List, /status): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
    n, NR, v[int(NR * 0.5 + 0.5)] * 1000, v[int(NR * 0.99 + 0.5)] * 1000, v[NR] * 1000 }'
frames=$(curl -s "$API/status" | jq '[.instances[].sinks[0].frames // 0] | add')
echo "  (the $SETS cameras had recorded $frames frames together)"
stop_serve
kill "${PIDS[0]}" 2>/dev/null || true
wait 2>/dev/null || true
PIDS=()
rm -rf "$WORK/sets"

# ---- 3: memory of serve with INACTIVE inactive instances ----
start_serve "$WORK/inactive"
base_rss=$(kib "$SERVE" VmRSS)
set_topology
for i in $(seq "$INACTIVE"); do
  s=$(call GraphInstanceSet "$(instance "idle-$i" "rtsp://127.0.0.1:1/cam$i")")
  [ "$s" = 201 ] || { echo "GraphInstanceSet idle-$i: HTTP $s" >&2; exit 1; }
done
rss=$(kib "$SERVE" VmRSS); hwm=$(kib "$SERVE" VmHWM)
stop_serve
# Restarted on that state: what loading and resolving the instances costs.
start_serve "$WORK/inactive"
sleep 1
rss2=$(kib "$SERVE" VmRSS)
stop_serve
awk -v n="$INACTIVE" -v b="$base_rss" -v r="$rss" -v h="$hwm" -v r2="$rss2" 'BEGIN {
  printf "serve with %d inactive instances: RSS %.1f MiB (%.1f MiB empty; peak %.1f MiB), %.1f MiB after a restart on that state\n",
    n, r / 1024, b / 1024, h / 1024, r2 / 1024 }'
PIDS=()
rm -rf "$WORK/inactive"

# ---- 4: recording CPU of serve against run, CPU_N cameras ----
mkdir -p "$WORK/clip"
ffmpeg -v error -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=6" -c:v libx264 -preset veryfast \
  -profile:v main -pix_fmt yuv420p -bf 0 -g 25 -keyint_min 25 -sc_threshold 0 \
  -b:v 2M -maxrate 2M -bufsize 2M -f h264 "$WORK/clip/video.h264"
PORT=$((20000 + RANDOM % 20000))
start_camera "$PORT" "$CPU_N" --clip "$WORK/clip"
INST=()
for i in $(seq "$CPU_N"); do
  f="$WORK/instance-$i.json"
  instance "cam$i" "rtsp://127.0.0.1:$PORT/cam$i" >"$f"
  INST+=(--instance "$f")
done
RUST_LOG=warn "$BIN" run "$TOPOLOGY" "${INST[@]}" --data-dir "$WORK/run" --progress-secs 600 2>"$WORK/run.log" &
RUN=$!
PIDS+=($RUN)
start_serve "$WORK/serve"
set_topology
for i in $(seq "$CPU_N"); do
  call GraphInstanceSet "$(instance "cam$i" "rtsp://127.0.0.1:$PORT/cam$i")" >/dev/null
  call GraphInstanceActivate "{\"@apiVersion\":\"2.0\",\"name\":\"cam$i\"}" >/dev/null
done
sleep "$WARMUP"
run0=$(cpu_ticks "$RUN"); serve0=$(cpu_ticks "$SERVE")
sleep "$DURATION"
run1=$(cpu_ticks "$RUN"); serve1=$(cpu_ticks "$SERVE")
run_hwm=$(kib "$RUN" VmHWM); serve_hwm=$(kib "$SERVE" VmHWM)
frames=$(curl -s "$API/status" | jq '[.instances[].sinks[0].frames // 0] | add')
dropped=$(curl -s "$API/status" | jq '[.instances[].sinks[0].droppedFrames // 0] | add')
stop_serve
kill -INT "$RUN"; wait "$RUN" 2>/dev/null || true
awk -v n="$CPU_N" -v d="$DURATION" -v hz="$HZ" -v r="$((run1 - run0))" -v s="$((serve1 - serve0))" \
    -v rh="$run_hwm" -v sh="$serve_hwm" -v f="$frames" -v dr="$dropped" 'BEGIN {
  rc = r / hz / n / (d / 60); sc = s / hz / n / (d / 60);
  printf "recording %d cameras for %d s: run %.3f, serve %.3f CPU-s per camera-minute, serve/run %.3f; peak RSS per camera run %.2f, serve %.2f MiB; serve recorded %d frames (%d dropped)\n",
    n, d, rc, sc, (rc > 0 ? sc / rc : 0), rh / 1024 / n, sh / 1024 / n, f, dr }'
