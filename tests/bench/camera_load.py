#!/usr/bin/env python3
"""Cost of the test camera: starts `mediagraph camera --count N --clip DIR`, plays every stream
with N minimal RTSP/TCP clients (asyncio, video track, checks RTP sequence numbers), and prints
the camera's CPU seconds and peak RSS over the measured window, and per-client rate/fps/gaps.

usage: tests/bench/camera_load.py MEDIAGRAPH_BINARY CLIP_DIR N [SECONDS] [PORT]
(make CLIP_DIR with the 720p command in host/assets/camera/README.md)
"""
import asyncio
import subprocess
import sys
import time

binary, clip, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
secs = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
port = int(sys.argv[5]) if len(sys.argv) > 5 else 18600
stats = {"bytes": 0, "frames": 0, "gaps": 0}


async def request(r, w, method, url, extra=""):
    w.write(f"{method} {url} RTSP/1.0\r\nCSeq: 1\r\n{extra}\r\n".encode())
    await w.drain()
    head = (await r.readuntil(b"\r\n\r\n")).decode()
    assert head.startswith("RTSP/1.0 200"), head
    length, session = 0, None
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
        if name.lower() == "session":
            session = value.strip().split(";")[0]
    if length:
        await r.readexactly(length)
    return session


async def client(i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    url = f"rtsp://127.0.0.1:{port}/cam{i}"
    await request(r, w, "DESCRIBE", url)
    s = await request(r, w, "SETUP", url + "/trackID=0",
                      "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
    await request(r, w, "PLAY", url + "/", f"Session: {s}\r\n")
    last = None
    while True:
        hdr = await r.readexactly(4)
        pkt = await r.readexactly(int.from_bytes(hdr[2:4], "big"))
        stats["bytes"] += len(pkt) + 4
        if hdr[1] == 0:
            seq = int.from_bytes(pkt[2:4], "big")
            if last is not None and seq != (last + 1) & 0xFFFF:
                stats["gaps"] += 1
            last = seq
            stats["frames"] += pkt[1] >> 7


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


async def main():
    cam = subprocess.Popen([binary, "camera", "--port", str(port), "--count", str(n),
                            "--clip", clip], stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(1)
        tasks = [asyncio.create_task(client(i)) for i in range(1, n + 1)]
        await asyncio.sleep(3)
        before, cpu0, t0 = dict(stats), cpu_seconds(cam.pid), time.time()
        await asyncio.sleep(secs)
        dt, cpu = time.time() - t0, cpu_seconds(cam.pid) - cpu0
        rss = [l for l in open(f"/proc/{cam.pid}/status") if l.startswith("VmHWM")][0].split()[1]
        d = {k: stats[k] - before[k] for k in stats}
        print(f"N={n} window={dt:.1f}s camera_cpu={cpu:.2f}s peak_rss={int(rss) // 1024}MiB "
              f"per_client={d['bytes'] * 8 / dt / n / 1e6:.2f}Mbit/s "
              f"fps={d['frames'] / dt / n:.2f} seq_gaps={stats['gaps']}")
        for t in tasks:
            t.cancel()
    finally:
        cam.terminate()
        cam.wait()


asyncio.run(main())
