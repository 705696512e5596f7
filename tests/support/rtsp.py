"""Pytest-side handle on the test RTSP camera (`tests/support/rtsp_server.py`, run by the system Python + gi).

    with RtspServer({"cam": clip}, loop=True) as server:
        src = open_source(server.url("cam"))
        server.kill()      # SIGKILL: the camera crashes, connections drop
        server.restart()   # back on the same port

`available()` says whether the system Python can run the server at all (tests skip with its reason).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import TracebackType

from . import children
from .paths import VIDEO

SERVER = Path(__file__).resolve().parent / "rtsp_server.py"
SYSTEM_PYTHON = os.environ.get("ENHANCE_GI_PYTHON", "/usr/bin/python3")
OFFICE = VIDEO / "office_fisheye_cctv.mp4"
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "missing = [e for e in ('filesrc', 'qtdemux', 'h264parse', 'rtph264pay', 'appsrc', 'appsink')"
    " if Gst.ElementFactory.find(e) is None];"
    "print('missing GStreamer elements: ' + ', '.join(missing) if missing else 'ok')"
)


@lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """(True, "") if the RTSP test server can run here, else (False, why)."""
    if not Path(SYSTEM_PYTHON).exists():
        return False, f"{SYSTEM_PYTHON} not found (the RTSP test server needs the system Python with gi)"
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"cannot run {SYSTEM_PYTHON}: {e}"
    lines = (r.stdout + r.stderr).strip().splitlines()
    out = lines[-1] if lines else f"exit status {r.returncode}"
    if r.returncode != 0 or r.stdout.strip() != "ok":
        return False, (
            f"{SYSTEM_PYTHON} cannot import gi's GstRtspServer ({out}); install gstreamer1.0-rtsp "
            "gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
        )
    return True, ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """The test camera as a child process on 127.0.0.1: start, crash (`kill`), `restart` on the same port.

    `mounts` maps a mount name to an H.264 mp4; `loop` plays forever (otherwise each play-through ends
    the stream); `user` ("name:password") makes the server demand Basic authentication.
    """

    def __init__(
        self,
        mounts: Mapping[str, str | Path],
        *,
        loop: bool = True,
        user: str | None = None,
        port: int | None = None,
        ready_timeout: float = 20.0,
    ) -> None:
        self.mounts = {k: Path(v) for k, v in mounts.items()}
        self.loop, self.user = loop, user
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.log: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> RtspServer:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("RTSP test server already running")
        cmd = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port)]
        for name, path in self.mounts.items():
            cmd += ["--mount", f"{name}={path}"]
        if self.loop:
            cmd.append("--loop")
        if self.user:
            cmd += ["--user", self.user]
        deadline = time.monotonic() + self.ready_timeout
        while True:  # the port may still be held for a moment after a kill: retry until the deadline
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
            )
            if self._wait_ready(deadline):
                return self
            self._reap()
            if time.monotonic() >= deadline:
                raise RuntimeError(f"RTSP test server did not start on port {self.port}: {' | '.join(self.log[-5:])}")
            time.sleep(0.2)

    def _wait_ready(self, deadline: float) -> bool:
        assert self.proc is not None and self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, min(0.5, deadline - time.monotonic())))
            if ready:
                line = self.proc.stdout.readline()
                if not line:  # exited
                    return False
                line = line.strip()
                self.log.append(line)
                if line == "ready":
                    return True
            elif self.proc.poll() is not None:
                return False
        return False

    def _reap(self) -> None:
        children.reap(self.proc)

    def kill(self) -> None:
        """SIGKILL: the camera vanishes without a goodbye, as in a crash or power cut."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """SIGTERM and wait (orderly shutdown); a frozen camera is woken first so that it can exit."""
        if self.running:
            self.proc.send_signal(signal.SIGCONT)
        children.stop(self.proc)

    def freeze(self) -> None:
        """SIGSTOP: the camera hangs with its connections open (a stalled feed; reads must time out)."""
        if self.running:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after `freeze`."""
        if self.running:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> RtspServer:
        """Kill if running, then start again on the same port."""
        self.kill()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------------ URLs

    def url(self, mount: str, user: str | None = None) -> str:
        """rtsp://[user@]127.0.0.1:PORT/mount (`user` as "name:password" to put credentials in the URL)."""
        auth = f"{user}@" if user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/{mount.strip('/')}"

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
