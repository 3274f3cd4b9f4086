#!/usr/bin/env python3
"""Test peer: GStreamer's RTSP server (gst-rtsp-server) serving a pre-encoded H.264 clip in a
loop, in real time, with continuous timestamps, over RTSP (clients choose TCP interleaved).

The clip is demuxed once into memory; each client session gets its own pipeline whose appsrc is
fed access units paced by the wall clock, with timestamps that keep increasing across loops.

With --launch instead of --clip, each session runs the given gst-rtsp-server launch line (live
test sources and encoders, payloaders named pay0, pay1, ...), e.g. to serve codecs the
recorder does not support (G.711, MJPEG) next to ones it does.

usage: gst_rtsp_server.py --port P (--clip clip.mp4 | --launch "( ... )") [--path /stream]
                          [--user U --password P [--auth basic|digest]]
Prints "READY rtsp://127.0.0.1:P/stream" on stdout once listening, and "session playing" /
"session torn down" on stderr when a client's PLAY / TEARDOWN is answered.
"""
import argparse
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def load_clip(path):
    """Returns (caps string, [(data, pts_ns, keyframe)]) of the clip's H.264 access units."""
    pipe = Gst.parse_launch(
        f'filesrc location="{path}" ! qtdemux ! h264parse config-interval=-1 ! '
        "video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false"
    )
    sink = pipe.get_by_name("sink")
    pipe.set_state(Gst.State.PLAYING)
    frames, caps = [], None
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        buf = sample.get_buffer()
        caps = caps or sample.get_caps().to_string()
        ok, info = buf.map(Gst.MapFlags.READ)
        frames.append((bytes(info.data), buf.pts, not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)))
        buf.unmap(info)
    pipe.set_state(Gst.State.NULL)
    if not frames:
        sys.exit(f"no H.264 frames in {path}")
    return caps, frames


class Feeder(threading.Thread):
    """Pushes the clip into one session's appsrc in real time, looping until the session's
    media is unprepared. A refused push (e.g. FLUSHING while the server flushes the media) is
    reported on stderr and does not end it: only the media's lifecycle does."""

    def __init__(self, appsrc, frames, frame_ns):
        super().__init__(daemon=True)
        self.appsrc, self.frames, self.frame_ns = appsrc, frames, frame_ns
        first = frames[0][1]
        self.offsets = [pts - first for _, pts, _ in frames]
        self.loop_ns = self.offsets[-1] + frame_ns
        self.unprepared = threading.Event()

    def stop(self, *_):
        self.unprepared.set()

    def run(self):
        clock = self.appsrc.get_clock()
        while clock is None:
            time.sleep(0.01)
            clock = self.appsrc.get_clock()
        running0 = clock.get_time() - self.appsrc.get_base_time()
        wall0 = time.monotonic()
        n, last_flow = 0, Gst.FlowReturn.OK
        while True:
            for (data, _, key), off in zip(self.frames, self.offsets):
                t = n * self.loop_ns + off
                delay = wall0 + t / 1e9 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if self.unprepared.is_set():
                    return
                buf = Gst.Buffer.new_wrapped(data)
                buf.pts = buf.dts = running0 + t
                buf.duration = self.frame_ns
                if not key:
                    buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
                flow = self.appsrc.emit("push-buffer", buf)
                if flow != last_flow:
                    print(f"push-buffer: {flow.value_nick}", file=sys.stderr, flush=True)
                    last_flow = flow
            n += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--clip")
    source.add_argument("--launch")
    ap.add_argument("--path", default="/stream")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--auth", choices=["basic", "digest"], default="basic")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    if args.launch:
        factory.set_launch(args.launch)
    else:
        caps, frames = load_clip(args.clip)
        frame_ns = Gst.SECOND // args.fps
        factory.set_launch(
            f'( appsrc name=src is-live=true format=time caps="{caps}" ! h264parse ! '
            "rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )

        def configure(_factory, media):
            src = media.get_element().get_child_by_name("src")
            feeder = Feeder(src, frames, frame_ns)
            media.connect("unprepared", feeder.stop)
            feeder.start()

        factory.connect("media-configure", configure)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if args.auth == "digest":
            auth.add_digest(args.user, args.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_role_from_structure(
            Gst.Structure.from_string("user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0]
        )
        factory.set_permissions(perms)
    server.get_mount_points().add_factory(args.path, factory)

    def report(message):
        return lambda _client, _context: print(message, file=sys.stderr, flush=True)

    def connected(_server, client):
        client.connect("play-request", report("session playing"))
        client.connect("teardown-request", report("session torn down"))

    server.connect("client-connected", connected)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
