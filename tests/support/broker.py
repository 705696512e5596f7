"""Pytest-side handle on a real Mosquitto broker (Debian package `mosquitto`) on 127.0.0.1.

    with Mosquitto(tmp_path) as broker:                          # anonymous
        sink = MqttSink(broker.url())
        broker.kill()      # SIGKILL: the broker vanishes mid-stream, connections drop
        broker.start()     # back on the same port
    Mosquitto(tmp_path, users={"enhance": "s3cret"})              # only these users may connect

`available()` says whether mosquitto (and mosquitto_passwd) can run here; tests skip with its reason.
`Subscriber(broker)` is a paho-mqtt client that records what arrives under `enhance/#`.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import TracebackType

from . import children
from .rtsp import free_port  # one free-port helper for every test server

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


@lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """(True, "") if a Mosquitto broker can be started here, else (False, why)."""
    if not Path(MOSQUITTO).exists():
        return False, "mosquitto not found (Debian package `mosquitto`)"
    if not Path(MOSQUITTO_PASSWD).exists():
        return False, "mosquitto_passwd not found (Debian package `mosquitto`)"
    return True, ""


class Mosquitto:
    """A broker as a child process: `start`, crash (`kill`), `start` again on the same port, `stop`.

    `users` maps user names to passwords: the broker then refuses anonymous clients. The config, password
    file and log live in `workdir`; `log()` returns what the broker wrote.
    """

    def __init__(self, workdir: Path, *, users: Mapping[str, str] | None = None, port: int | None = None,
                 ready_timeout: float = 10.0) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = dict(users or {})
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "mosquitto.log"
        self.conf = self.dir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            # as root, mosquitto would switch to the `mosquitto` user, which cannot read a test's files
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "persistence false",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if self.users:
            passwd = self.dir / "passwd"
            passwd.unlink(missing_ok=True)
            for i, (name, password) in enumerate(self.users.items()):
                subprocess.run([MOSQUITTO_PASSWD, "-b", *(["-c"] if i == 0 else []), str(passwd), name, password],
                               check=True, capture_output=True, timeout=30)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> Mosquitto:
        """Start on `self.port` (retrying while the old listener's port is still being released)."""
        if self.running:
            raise RuntimeError("mosquitto already running")
        deadline = time.monotonic() + self.ready_timeout
        while True:
            with open(self.log_path, "ab") as out:
                self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT)
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._accepts():
                    return self
                time.sleep(0.02)
            self._reap()
            if time.monotonic() >= deadline:
                raise RuntimeError(f"mosquitto did not start on port {self.port}: {self.log()[-500:]}")
            time.sleep(0.1)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _reap(self) -> None:
        children.reap(self.proc)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a goodbye (crash, power cut); clients see a dead socket."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """SIGTERM and wait (an orderly shutdown)."""
        children.stop(self.proc)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def url(self, user: str | None = None, password: str | None = None, scheme: str = "mqtt") -> str:
        """mqtt://[user[:password]@]127.0.0.1:PORT"""
        auth = ""
        if user is not None:
            auth = user + (f":{password}" if password is not None else "") + "@"
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Subscriber:
    """A paho client subscribed to `<prefix>/#`; `messages` is [(topic, text payload, retain)] in arrival
    order, `images` the same for binary payloads (snapshot JPEGs)."""

    def __init__(self, broker: Mosquitto, topic: str = "enhance/#", user: str | None = None,
                 password: str | None = None) -> None:
        import paho.mqtt.client as paho  # the [mqtt] extra: only tests that subscribe need it

        self.messages: list[tuple[str, str, bool]] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2)
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, r, p: self.subscribed.set()
        self.images: list[tuple[str, bytes, bool]] = []  # binary payloads (snapshot JPEGs)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber could not subscribe"

    def _on_message(self, client, userdata, m) -> None:
        try:
            self.messages.append((m.topic, m.payload.decode(), bool(m.retain)))
        except UnicodeDecodeError:
            self.images.append((m.topic, bytes(m.payload), bool(m.retain)))

    def on(self, topic: str) -> list[tuple[str, bool]]:
        return [(p, r) for t, p, r in self.messages if t == topic]

    def events(self) -> list[dict]:
        return [json.loads(p) for t, p, _ in self.messages if t.endswith("/events")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
