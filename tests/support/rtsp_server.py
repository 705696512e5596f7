#!/usr/bin/python3
"""A small live RTSP camera for tests: GStreamer's RTSP server serving H.264 mp4 files in real time.

Run with the system Python (Debian's `python3-gi`, `gir1.2-gst-rtsp-server-1.0`, `gstreamer1.0-rtsp`,
`gstreamer1.0-plugins-{good,bad}`), not the project's venv:

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --mount cam=clip.mp4 [--mount cam2=other.mp4]
                                          [--loop] [--user name:password]

serves each file's video at rtsp://127.0.0.1:PORT/NAME (one shared pipeline per mount, so every client
sees the same live picture), prints `ready` on stdout once it listens, and exits on SIGTERM/SIGINT.

Without `--loop` a mount plays its file once, paced by the clock (a client that connects after the end
starts a new play-through). With `--loop` the file's H.264 access units are read by a second pipeline and
pushed into an `appsrc` in real time with timestamps that keep increasing across the wrap, forever.
`--user` makes every mount require HTTP Basic authentication with those credentials.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ROLE = "user"
HEADROOM = 100 * Gst.MSECOND  # first access unit's decode time ahead of the media's clock: a B-frame's PTS may lead its DTS
REANCHOR = Gst.SECOND  # a lead beyond this means the media's running time restarted


def _quote(path: str) -> str:
    """A location for a gst-launch line: quoted, with quotes and backslashes escaped."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LoopFeeder(threading.Thread):
    """Reads a file's H.264 access units (qtdemux ! h264parse ! appsink) and pushes them into the media's
    appsrc at their own pace, wrapping to the start at the end with timestamps that keep increasing."""

    def __init__(self, path: str, appsrc: Gst.Element) -> None:
        super().__init__(daemon=True)
        self.appsrc = appsrc
        self.stopped = threading.Event()
        self.reader = Gst.parse_launch(
            f"filesrc location={_quote(path)} ! qtdemux ! h264parse config-interval=-1 "
            "! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=out sync=false max-buffers=8"
        )
        self.sink = self.reader.get_by_name("out")

    def stop(self) -> None:
        self.stopped.set()

    def _running_time(self) -> int | None:
        clock = self.appsrc.get_clock()
        if clock is None:
            return None
        return clock.get_time() - self.appsrc.get_base_time()

    def run(self) -> None:
        none = Gst.CLOCK_TIME_NONE
        self.reader.set_state(Gst.State.PLAYING)
        shift: int | None = None  # file time + shift = media running time
        first_pts: int | None = None  # the file's earliest PTS and latest PTS + duration: one loop's length
        end_pts = 0
        try:
            while not self.stopped.is_set():
                sample = self.sink.emit("try-pull-sample", 200 * Gst.MSECOND)
                if sample is None:
                    if self.sink.get_property("eos"):  # rewind; the next loop continues after this one
                        self.reader.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
                        if shift is not None and first_pts is not None:
                            shift += end_pts - first_pts
                    continue
                if self.appsrc.get_property("caps") is None:
                    self.appsrc.set_property("caps", sample.get_caps())
                buf = sample.get_buffer().copy()
                pts, dts = buf.pts, buf.dts
                when = dts if dts != none else pts
                if when == none:
                    continue
                if shift is None:
                    now = self._running_time()
                    while now is None and not self.stopped.wait(0.01):
                        now = self._running_time()
                    if now is None:
                        break
                    shift = now + HEADROOM - when
                duration = buf.duration if buf.duration != none else 0
                if pts != none:
                    first_pts = pts if first_pts is None else min(first_pts, pts)
                    end_pts = max(end_pts, pts + duration)
                # real-time pacing: hand each access unit over when its decode time comes
                while not self.stopped.is_set():
                    now = self._running_time()
                    if now is None or now >= when + shift - 10 * Gst.MSECOND:
                        break
                    if when + shift - now > REANCHOR:
                        # The media's running time restarted after we anchored (seen when a client connects
                        # as the server starts): waiting for the old timeline would starve every client.
                        shift = now + HEADROOM - when
                        continue
                    self.stopped.wait(min((when + shift - now) / Gst.SECOND, 0.1))
                if self.stopped.is_set():
                    break
                if pts != none:
                    buf.pts = pts + shift
                if dts != none:
                    buf.dts = dts + shift
                if self.appsrc.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                    break  # the media was shut down
        finally:
            self.reader.set_state(Gst.State.NULL)


class Factory(GstRtspServer.RTSPMediaFactory):
    def __init__(self, path: str, loop: bool) -> None:
        super().__init__()
        self.path, self.loop = path, loop
        self.set_shared(True)
        if loop:
            self.set_launch(
                "( appsrc name=src is-live=true format=time do-timestamp=false "
                "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
            )
            self.connect("media-configure", self._configure)
        else:
            self.set_launch(
                f"( filesrc location={_quote(path)} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
            )

    def _configure(self, factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        feeder = LoopFeeder(self.path, appsrc)
        media.connect("unprepared", lambda *_: feeder.stop())
        feeder.start()


def _auth(server: GstRtspServer.RTSPServer, user: str, password: str) -> None:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", ROLE)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--mount", action="append", required=True, metavar="NAME=FILE")
    ap.add_argument("--loop", action="store_true", help="play each file forever")
    ap.add_argument("--user", metavar="NAME:PASSWORD", help="require HTTP Basic authentication")
    args = ap.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    if args.user:
        user, _, password = args.user.partition(":")
        _auth(server, user, password)
    mounts = server.get_mount_points()
    for spec in args.mount:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            ap.error(f"--mount wants NAME=FILE, got {spec!r}")
        factory = Factory(path, args.loop)
        if args.user:
            factory.add_role_from_structure(
                Gst.Structure.new_from_string(
                    f"{ROLE}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
                )
            )
        mounts.add_factory("/" + name.strip("/"), factory)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr, flush=True)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, lambda: (loop.quit(), False)[1])
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
