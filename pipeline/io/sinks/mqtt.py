"""MQTT: live events to a broker in Frigate's shape, for Home Assistant, Node-RED and the like.

Topics (`prefix` defaults to "enhance"):

    <prefix>/available        "online" on every connect, "offline" on close and, as the retained last
                              will, when this process dies or loses the broker without saying goodbye
    <prefix>/events           {"type": "new"|"update"|"end", "before": {…}|null, "after": {…}} per track
                              event (not retained: a stale detection must not greet tomorrow's subscriber)
    <prefix>/<camera>/status  "online" / "offline" (retained): whether frames are arriving from the camera
    <prefix>/<camera>/face/snapshot
                              JPEG of the best face so far (the camera's own pixels, aligned crop),
                              retained, as Frigate's `<camera>/<label>/snapshot`

`<camera>` is the camera's slug (`pipeline.io.events.camera_slug`), the same string as the payload's
`camera` and inside its `id`; docs/events.md lists every field.

This is the layout of Frigate's MQTT integration (docs.frigate.video/integrations/mqtt: `frigate/available`
online/offline, `frigate/events` with type new/update/end and before/after objects carrying id, camera,
label, sub_label, score, top_score, box, area, start_time, end_time null until the end,
`frigate/<camera>/<label>/snapshot`), so consumers written for Frigate need few
changes; the `before`/`after` objects are `pipeline.io.events.TrackSnapshot`s.

A broker that refuses the credentials is remembered (`error`): the run's end says so on the terminal and
in the manifests (`pipeline.io.sinks.network`); paho keeps retrying meanwhile, in case it is fixed.

The frame loop must never wait for the network: `publish` only appends to a bounded queue, a thread of
ours hands messages to paho-mqtt while the broker is connected, and paho's own thread connects and
reconnects with backoff (`connect_async` + `loop_start`), so a broker that is down at start, or goes away
mid-run, costs the caller nothing. While it is away the queue holds the latest `max_queue` messages and
drops older ones (counted in `dropped`); on reconnect the queue is sent and every camera's status is
published again, so retained state is right even if a status message was dropped.

Credentials (`mqtt://user:pass@host`, `${VAR}` from the environment, or `username`/`password`) never
appear in logs, exceptions, `repr` or payloads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

import cv2

from ...core.errors import ConfigError
from ..events import (
    OFFLINE_KINDS,
    ONLINE_KINDS,
    Event,
    Secrets,
    TrackBook,
    TrackEvent,
    expand_env,
    json_dumps,
)

try:  # an optional dependency: pip install "enhance[mqtt]"
    import paho.mqtt.client as _mqtt
except ImportError:  # pragma: no cover - exercised only where paho-mqtt is missing
    _mqtt = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

__all__ = ["MqttSink", "parse_mqtt_url"]

CONNECT_GRACE_S = 1.0  # close() waits this long for a connection still being made, to send what is queued
DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}
_TOPIC_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})
SNAPSHOT_QUALITY = 90  # JPEG quality of the snapshot topic's image
REFUSED = frozenset({134, 135})  # CONNACK reasons: bad user name or password, not authorized


def parse_mqtt_url(url: str) -> dict[str, Any]:
    """`mqtt[s]://[user[:password]@]host[:port]` (after `${VAR}` expansion) → its parts, plus `shown`.

    `shown` is the URL fit to log: scheme, host and port, with `***@` where credentials were. Errors are
    `ConfigError`s that quote only `shown`.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError as e:  # e.g. "mqtt://[::1": the message names the fault, never the URL's text
        raise ConfigError(f"MQTT URL is malformed ({e})") from None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    has_auth = "@" in parts.netloc
    where = host + (f":{parts.port}" if _safe_port(parts) else "")
    shown = f"{scheme}://{'***@' if has_auth else ''}{where}"
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(f"MQTT URL must start with mqtt:// or mqtts://, got {shown}")
    if not host:
        raise ConfigError(f"MQTT URL has no host: {shown}")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ConfigError(f"MQTT URL has an invalid port: {shown}") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"MQTT URL must be only scheme, credentials, host and port: {shown}")
    return {
        "tls": scheme in ("mqtts", "ssl"),
        "host": host,
        "port": port,
        "username": unquote(parts.username) if parts.username is not None else None,
        "password": unquote(parts.password) if parts.password is not None else None,
        "shown": f"{scheme}://{'***@' if has_auth else ''}{host}:{port}",
    }


def _safe_port(parts: Any) -> bool:
    try:
        return parts.port is not None
    except ValueError:
        return False


class MqttSink:
    """Publishes events to an MQTT broker (paho-mqtt 2) without ever blocking `publish`.

    `url`: `mqtt://host[:1883]` or `mqtts://host[:8883]`, optionally with `user:password@`; `${VAR}`
    placeholders in it (and in `username`/`password`) are read from the environment. `qos` applies to every
    message. `max_queue` bounds the messages waiting for the broker. `reconnect_min_s`/`reconnect_max_s`
    set paho's reconnect backoff. `tls_ca` is a CA bundle for mqtts (default: the system's).

    Counters: `sent` (event messages handed to paho; camera statuses are state and not counted),
    `snapshots` (snapshot JPEGs handed to paho), `dropped` (messages never sent: queue full, or still queued
    when `close` ran out of time); `connected` says whether the broker is there now; `error` why it never
    was (credentials refused), else None.
    """

    name = "mqtt"

    def __init__(
        self,
        url: str,
        prefix: str = "enhance",
        client_id: str | None = None,
        qos: int = 1,
        *,
        username: str | None = None,
        password: str | None = None,
        max_queue: int = 1000,
        keepalive_s: int = 30,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        tls_ca: str | None = None,
    ) -> None:
        if _mqtt is None:
            raise ConfigError('the MQTT sink needs paho-mqtt: pip install "enhance[mqtt]"')
        if qos not in (0, 1, 2):
            raise ConfigError(f"MQTT qos must be 0, 1 or 2, got {qos!r}")
        prefix = prefix.strip("/")
        if not prefix or any(c in prefix for c in "+#\0"):
            raise ConfigError(f"MQTT topic prefix must be non-empty without + or #, got {prefix!r}")
        expanded, values = expand_env(url, "the MQTT URL")
        try:
            target = parse_mqtt_url(expanded)
        except ConfigError as e:
            raise ConfigError(Secrets(values).scrub(str(e))) from None
        user, pw = target["username"], target["password"]
        if username is not None:
            user, _ = expand_env(username, "the MQTT user name")
        if password is not None:
            pw, _ = expand_env(password, "the MQTT password")
        # only the password is scrubbed from payloads: a user name is no secret (brokers log it) and
        # scrubbing a word like "enhance" would mangle ordinary fields
        self.secrets = Secrets([pw])
        self.shown: str = target["shown"]
        self.host, self.port = target["host"], target["port"]
        self.prefix, self.qos = prefix, qos
        self.sent = self.snapshots = 0
        self.dropped = 0
        self.error: str | None = None
        self._max_queue = max(1, int(max_queue))
        self._queue: deque[tuple[str, str | bytes, bool]] = deque()
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._closing = False
        self._cameras: dict[str, str] = {}  # camera → its latest status ("online"/"offline")
        self._pending: set[str] = set()  # cameras whose status the broker has not been sent yet
        self._handing = False  # the sender took a message off the queue and has not yet handed it to paho
        self._book = TrackBook()
        self._ever_connected = False
        self._warned_down = False

        self.client = _mqtt.Client(
            callback_api_version=_mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"enhance-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            reconnect_on_failure=True,
        )
        if user is not None:
            self.client.username_pw_set(user, pw)
        if target["tls"]:
            self.client.tls_set(ca_certs=tls_ca)
        self.client.will_set(self.topic("available"), "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_max_s)  # type: ignore[arg-type]
        self.client.connect_timeout = connect_timeout_s
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(self._max_queue)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        # connect_async returns at once; paho's thread connects, and retries with backoff until close()
        self.client.connect_async(self.host, self.port, keepalive=keepalive_s)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name=f"mqtt {self.shown}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ topics

    def topic(self, *parts: str) -> str:
        """`<prefix>/<part>/…`, each part made safe for a topic level (no /, + or #)."""
        return "/".join([self.prefix, *(p.translate(_TOPIC_UNSAFE) or "_" for p in parts)])

    # ------------------------------------------------------------------ producer side (any thread)

    def publish(self, event: Event) -> None:
        """Queue the messages `event` means; returns at once whatever the broker is doing."""
        if isinstance(event, ONLINE_KINDS):
            self._status(event.camera, "online")
        elif isinstance(event, OFFLINE_KINDS):
            self._status(event.camera, "offline")
        folded = self._book.apply(event)
        if folded is None:
            return
        kind, before, after = folded
        payload = {"type": kind, "before": None if before is None else before.payload(), "after": after.payload()}
        self._put(self.topic("events"), json_dumps(payload), False)
        if isinstance(event, TrackEvent) and event.snapshot is not None:
            ok, jpeg = cv2.imencode(".jpg", event.snapshot, [cv2.IMWRITE_JPEG_QUALITY, SNAPSHOT_QUALITY])
            if ok:
                self._put(self.topic(event.camera, "face", "snapshot"), jpeg.tobytes(), True)

    __call__ = publish

    def _status(self, camera: str, status: str) -> None:
        """A camera's status is state, not a message: kept per camera and sent (latest value) before the
        queued events, and again after every reconnect, so it is never dropped and never stale."""
        with self._cond:
            if self._closing:
                return
            self._cameras[camera] = status
            self._pending.add(camera)
            self._cond.notify_all()

    def _put(self, topic: str, payload: str | bytes, retain: bool) -> None:
        with self._cond:
            if self._closing:
                self.dropped += 1
                return
            if len(self._queue) >= self._max_queue:  # the broker is away (or slow): lose the oldest
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((topic, payload, retain))
            self._cond.notify_all()

    # ------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not ((self._queue or self._pending) and self._connected.is_set()):
                    self._cond.wait(0.5)
                if not (self._queue or self._pending) or not self._connected.is_set():
                    if self._closing:
                        return
                    continue
                if self._pending:
                    camera = self._pending.pop()
                    hand = partial(self._hand_status, camera, self._cameras[camera])
                else:
                    hand = partial(self._hand, self._queue.popleft())
                self._handing = True
            try:
                hand()
            finally:
                with self._cond:
                    self._handing = False
                    self._cond.notify_all()

    def _hand_status(self, camera: str, status: str) -> None:
        info = self.client.publish(self.topic(camera, "status"), status, qos=1, retain=True)
        if info.rc != _mqtt.MQTT_ERR_SUCCESS:  # paho kept it (qos 1) or will get it again on connect
            self._pause_if_disconnected(info.rc)

    def _hand(self, message: tuple[str, str | bytes, bool]) -> None:
        topic, payload, retain = message
        text = isinstance(payload, str)
        info = self.client.publish(topic, self.secrets.scrub(payload) if text else payload, qos=self.qos,
                                   retain=retain)
        # NO_CONN with qos > 0: paho keeps the message and sends it after reconnecting
        if info.rc == _mqtt.MQTT_ERR_SUCCESS or (info.rc == _mqtt.MQTT_ERR_NO_CONN and self.qos > 0):
            with self._cond:
                if text:
                    self.sent += 1
                else:
                    self.snapshots += 1
            return
        # not taken (qos 0 while disconnected, or paho's own queue full): back to the front, then wait
        with self._cond:
            if len(self._queue) < self._max_queue:
                self._queue.appendleft(message)
            else:
                self.dropped += 1
        self._pause_if_disconnected(info.rc)

    def _pause_if_disconnected(self, rc: int) -> None:
        with self._cond:
            if rc == _mqtt.MQTT_ERR_NO_CONN:
                self._connected.clear()
            self._cond.wait(0.05)

    # ------------------------------------------------------------------ paho callbacks (paho's thread)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            if getattr(reason, "value", None) in REFUSED:
                self.error = f"the broker refused the credentials ({reason})"
            if not self._warned_down:
                self._warned_down = True
                log.warning("MQTT broker %s refused the connection: %s; retrying in the background",
                            self.shown, self.secrets.scrub(str(reason)))
            return
        if self._ever_connected or self._warned_down:
            log.info("MQTT broker %s connected", self.shown)
        self._ever_connected, self._warned_down, self.error = True, False, None
        client.publish(self.topic("available"), "online", qos=1, retain=True)
        with self._cond:
            self._pending.update(self._cameras)  # the broker may have lost retained state while we were away
            self._connected.set()
            self._cond.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._cond:
            was = self._connected.is_set()
            self._connected.clear()
            closing = self._closing
        if was and not closing:
            log.warning("MQTT broker %s went away (%s); events wait in a queue of %d, then the oldest are "
                        "dropped, until it is back", self.shown, self.secrets.scrub(str(reason)), self._max_queue)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        if not self._warned_down and not self._closing:
            self._warned_down = True
            log.warning("cannot reach MQTT broker %s; retrying in the background (events are queued, then "
                        "dropped, meanwhile)", self.shown)

    # ------------------------------------------------------------------ state and shutdown

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def stats(self) -> dict[str, Any]:
        """For the manifest: sent, snapshots, dropped, queued, connected, and `error` when there is one."""
        out: dict[str, Any] = {"sent": self.sent, "snapshots": self.snapshots, "dropped": self.dropped,
                               "queued": self.queued, "connected": self.connected}
        return out | ({"error": self.error} if self.error else {})

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is handed to paho, the message the sender holds included (True), or `timeout`
        passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._queue or self._pending or self._handing) and time.monotonic() < deadline:
                self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            return not (self._queue or self._pending or self._handing)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (if the broker is there), say "offline" on `<prefix>/available`, disconnect.

        Returns within about `timeout` seconds; what could not be sent is counted in `dropped`.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if not self.connected and (self._queue or self._pending):
            # a short run may end before the first connect completes: give it a moment, not the whole timeout
            self._connected.wait(min(CONNECT_GRACE_S, max(0.0, deadline - time.monotonic())))
        if self.connected:
            self.flush(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._closing = True
            self.dropped += len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self.connected:
            info = self.client.publish(self.topic("available"), "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        # loop_stop joins paho's thread, which may sit in a connect attempt (up to connect_timeout_s):
        # wait for it only as long as the deadline allows; it is a daemon thread and ends by itself
        stopper = threading.Thread(target=self.client.loop_stop, name="mqtt stop", daemon=True)
        stopper.start()
        stopper.join(max(0.1, deadline - time.monotonic()))
        self._connected.clear()

    def __enter__(self) -> MqttSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MqttSink({self.shown}, prefix={self.prefix!r}, qos={self.qos})"
