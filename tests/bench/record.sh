#!/usr/bin/env bash
# Benchmark of continuous recording: N cameras of 720p 2 Mbit/s H.264 (25 fps, 1 s GOP) served by
# the built-in test camera, recorded in the same run by
#   - mediagraph: one `mediagraph run` process recording all N graph instances, and
#   - ffmpeg: one `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 30` per camera.
# After a warm-up, CPU time (utime+stime from /proc) is measured over DURATION seconds; peak RSS
# is VmHWM. Prints CPU-seconds per camera-minute, peak RSS per camera, the ratios, and the frames
# mediagraph recorded vs the frames the camera served in that time.
#
# The ratio moves by a few hundredths between runs on a shared VM, so REPEAT=R measures each N
# R times (fresh processes each time) and adds a row with the median ratio.
#
# usage: tests/bench/record.sh [N ...]          default N: 1 8 32 100
#        DURATION=60 WARMUP=15 REPEAT=3 tests/bench/record.sh 8
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-15}
REPEAT=${REPEAT:-1}
COUNTS=("$@")
[ ${#COUNTS[@]} -eq 0 ] && COUNTS=(1 8 32 100)

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

mkdir -p "$WORK/clip"
ffmpeg -v error -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=6" -c:v libx264 -preset veryfast \
  -profile:v main -pix_fmt yuv420p -bf 0 -g 25 -keyint_min 25 -sc_threshold 0 \
  -b:v 2M -maxrate 2M -bufsize 2M -f h264 "$WORK/clip/video.h264"

cpu_ticks() { # utime+stime of the given pids
  local t=0
  for p in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
# Each camera's latest progress line: "CAMERA SECONDS-OF-DAY FRAMES DROPPED". Frames are
# compared over the time between two such lines of the same camera, not between two samples of
# the log: a tick prints N lines over tens of milliseconds, so a sample can fall between lines.
progress_snapshot() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -a ' progress: ' |
    sed -E 's/^[0-9-]+T([0-9]+):([0-9]+):([0-9.]+)Z.* progress: ([^:]+):.* ([0-9]+) frames \(([0-9]+) dropped\).*/\4 \1 \2 \3 \5 \6/' |
    awk '{t[$1] = $2 * 3600 + $3 * 60 + $4; f[$1] = $5; d[$1] = $6} END {for (c in f) print c, t[c], f[c], d[c]}'
}
# "RECORDED SERVED DROPPED" between two snapshots, at the camera's 25 fps.
frames_between() {
  awk 'NR == FNR {t0[$1] = $2; f0[$1] = $3; next}
       ($1 in t0) {dt = $2 - t0[$1]; if (dt < 0) dt += 86400; rec += $3 - f0[$1]; srv += 25 * dt; drop += $4}
       END {printf "%d %d %d\n", rec, srv + 0.5, drop}' "$1" "$2"
}
hwm_kib() { # sum of peak RSS of the given pids
  local t=0
  for p in "$@"; do
    t=$((t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status")))
  done
  echo "$t"
}

printf '%5s | %22s | %22s | %17s | %19s | %s\n' N "mediagraph CPU-s/cam-min" "ffmpeg CPU-s/cam-min" "CPU ratio mg/ff" "RSS/cam mg | ff MiB" "frames recorded/served (dropped)"
for N in "${COUNTS[@]}"; do
 RATIOS=()
 for _ in $(seq "$REPEAT"); do
  PORT=$((20000 + RANDOM % 20000))
  "$BIN" camera --port "$PORT" --count "$N" --clip "$WORK/clip" >"$WORK/camera-$N.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done
  INST=()
  for i in $(seq "$N"); do
    f="$WORK/instance-$N-$i.json"
    printf '{"@apiVersion":"2.0","name":"cam%s","properties":{"topologyName":"CVRToAsset","parameters":[{"name":"rtspUrl","value":"rtsp://127.0.0.1:%s/cam%s"}]}}' "$i" "$PORT" "$i" >"$f"
    INST+=(--instance "$f")
  done
  RUST_LOG=info "$BIN" run "$TOPOLOGY" "${INST[@]}" --data-dir "$WORK/mg-$N" --progress-secs 5 2>"$WORK/mg-$N.log" &
  MG=$!
  PIDS+=($MG)
  FF=()
  for i in $(seq "$N"); do
    mkdir -p "$WORK/ff-$N/$i"
    ffmpeg -nostdin -v error -rtsp_transport tcp -i "rtsp://127.0.0.1:$PORT/cam$i" -c copy -f segment \
      -segment_time 30 "$WORK/ff-$N/$i/%05d.mp4" 2>"$WORK/ff-$N-$i.log" &
    FF+=($!)
    PIDS+=($!)
  done
  sleep "$WARMUP"
  mg0=$(cpu_ticks "$MG"); ff0=$(cpu_ticks "${FF[@]}")
  progress_snapshot "$WORK/mg-$N.log" >"$WORK/progress0"
  sleep "$DURATION"
  mg1=$(cpu_ticks "$MG"); ff1=$(cpu_ticks "${FF[@]}")
  mg_hwm=$(hwm_kib "$MG"); ff_hwm=$(hwm_kib "${FF[@]}")
  progress_snapshot "$WORK/mg-$N.log" >"$WORK/progress1"
  read -r recorded served dropped < <(frames_between "$WORK/progress0" "$WORK/progress1")
  kill -INT "$MG"; wait "$MG" || true
  for p in "${FF[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${FF[@]}"; do wait "$p" 2>/dev/null || true; done
  kill "${PIDS[0]}" 2>/dev/null || true
  wait 2>/dev/null || true
  PIDS=()
  row=$(awk -v n="$N" -v d="$DURATION" -v hz="$HZ" -v mg="$((mg1 - mg0))" -v ff="$((ff1 - ff0))" \
      -v mgh="$mg_hwm" -v ffh="$ff_hwm" -v fr="$recorded" -v sv="$served" -v dr="$dropped" 'BEGIN {
    mgc = mg / hz / n / (d / 60); ffc = ff / hz / n / (d / 60);
    printf "%5d | %22.3f | %22.3f | %17.3f | %8.2f | %8.2f | %d/%d (between progress lines, %d dropped)\n",
      n, mgc, ffc, (ffc > 0 ? mgc / ffc : 0), mgh / 1024 / n, ffh / 1024 / n, fr, sv, dr
  }')
  echo "$row"
  RATIOS+=("$(echo "$row" | awk -F'|' '{gsub(/ /, "", $4); print $4}')")
  rm -rf "$WORK/mg-$N" "$WORK/ff-$N"
 done
 if [ "$REPEAT" -gt 1 ]; then
  printf '%s\n' "${RATIOS[@]}" | sort -n | awk -v n="$N" '{r[NR] = $1} END {
    printf "%5d | median CPU ratio mg/ff over %d runs: %.3f (range %.3f-%.3f)\n", n, NR, r[int((NR + 1) / 2)], r[1], r[NR]
  }'
 fi
done
