"""Event schema, fan-out, and the MQTT and webhook sinks against a real Mosquitto and a real HTTP server.

No mocks: the broker is Debian's `mosquitto` on 127.0.0.1 (killed with SIGKILL and restarted on the same
port to play a broker that goes away), the subscriber is a paho-mqtt client, the webhook endpoint is
`http.server` in a thread that can fail with 503s or hang.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import EventsConfig
from pipeline.core.errors import ConfigError, OutputError
from pipeline.core.types import Face, Track
from pipeline.io.events import (
    CameraGaveUp,
    CameraOffline,
    CameraOnline,
    CameraReconnecting,
    Event,
    EventBus,
    FramesDropped,
    RunEnded,
    RunStarted,
    TrackBook,
    TrackEnded,
    TrackStarted,
    TrackUpdated,
    camera_slug,
    envelope,
    json_dumps,
    track_ended,
    track_started,
    track_updated,
)
from pipeline.io.sinks.events import EventLog, source_events
from pipeline.io.sinks.network import Network
from pipeline.io.sinks.webhook import WebhookSink

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support import broker as mosq  # noqa: E402
from support.endpoint import PROXY_VARS, Endpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# publish must return within this, whatever the broker or endpoint is doing: a publish that waited would take
# the endpoint's 10 s timeout or a connection attempt, so 1 s still tells them apart on a busy machine (where a
# thread may wait a few ms for the GIL or a core at any time)
FAST_S = 1.0
AT = 1714557600.5

# Every kind, typed as the session and LiveSource build them, and the events.jsonl row each writes.
EVENTS: list[tuple[Event, dict]] = [
    (RunStarted(source="lobby", at=AT, live=True), {"event": "run_start", "live": True}),
    (TrackStarted(source="lobby", at=AT, track=3, frame=41, time=1.64, score=0.81, top_score=0.81,
                  box=(10.0, 20.0, 30.0, 45.0), frame_size=(640, 480)),
     {"event": "track_start", "track": 3, "observations": 1, "enhanced": 0, "frame": 41, "time": 1.64,
      "score": 0.81, "top_score": 0.81, "box": [10.0, 20.0, 30.0, 45.0], "frame_size": [640, 480]}),
    (TrackEnded(source="lobby", at=AT, track=3, reason="lost", observations=17, enhanced=3, time=2.96),
     {"event": "track_end", "track": 3, "observations": 17, "enhanced": 3, "reason": "lost", "last_time": 2.96}),
    (RunEnded(source="lobby", at=AT, status="complete", frames=250),
     {"event": "run_end", "status": "complete", "frames": 250}),
    (CameraOffline(source="lobby", at=AT, reason="end of stream", segment=0, time=7.5),
     {"event": "disconnect", "reason": "end of stream", "segment": 0, "time": 7.5, "wall": AT}),
    (CameraReconnecting(source="lobby", at=AT, attempt=1, after_s=0.374, reason="end of stream", time=7.5),
     {"event": "reconnect", "attempt": 1, "after_s": 0.374, "reason": "end of stream", "time": 7.5, "wall": AT}),
    (CameraOnline(source="lobby", at=AT, attempt=2, segment=1, downtime_s=1.912, time=9.41),
     {"event": "reconnected", "attempt": 2, "segment": 1, "downtime_s": 1.912, "time": 9.41, "wall": AT}),
    (CameraGaveUp(source="lobby", at=AT, attempts=5, reason="connection refused", time=30.0),
     {"event": "gave_up", "attempts": 5, "reason": "connection refused", "time": 30.0, "wall": AT}),
    (FramesDropped(source="lobby", at=AT, count=12, total=40, time=11.0),
     {"event": "dropped", "count": 12, "total": 40, "time": 11.0, "wall": AT}),
]


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def a_track(source: str = "127.0.0.1:18554/lobby") -> tuple[Track, Face]:
    """A track of two observations (scores 0.9, then 0.6), the first held with its crop by the policy."""
    track = Track(id=3, source=source)
    crop = np.full((128, 128, 3), (40, 90, 200), np.uint8)
    faces = [Face(box=np.array([100, 50, 124, 80], np.float32), kps=np.zeros((5, 2), np.float32), score=0.9,
                  frame_index=4, time=0.16, source=source, crop=crop, quality=0.8),
             Face(box=np.array([104, 52, 130, 84], np.float32), kps=np.zeros((5, 2), np.float32), score=0.6,
                  frame_index=9, time=0.36, source=source, quality=0.3)]
    for f in faces:
        track.observe(f)
    track.keep(faces[0])
    return track, faces[1]


# ============================================================================================ schema


@pytest.mark.parametrize(("event", "row"), EVENTS, ids=[r["event"] for _, r in EVENTS])
def test_each_kind_writes_its_row(event: Event, row: dict) -> None:
    d = json.loads(json.dumps(event.row()))
    assert d == {"at": "2024-05-01T10:00:00.500+00:00", "source": "lobby", "camera": "lobby", **row}


@pytest.mark.parametrize(("name", "slug"), [
    ("lobby", "lobby"), ("front-door_2", "front-door_2"), ("127.0.0.1:18554/lobby", "127_0_0_1_18554_lobby"),
    ("Hall cam #2+", "Hall_cam_2"), ("/", "camera"), ("", "camera")])
def test_one_camera_slug_for_topics_payloads_ids_and_files(name: str, slug: str) -> None:
    assert camera_slug(name) == slug
    assert TrackStarted(source=name, track=1, frame=0).camera == slug


def test_optional_fields_are_written_only_when_known() -> None:
    end = TrackEnded(source="desk", at=AT, track=5, reason="lost", observations=4, enhanced=2, time=2.0,
                     first_time=0.5, best_tile=Path("tracks/5/best.png"), enhance_confidence=0.81, person=2,
                     snapshot=np.zeros((8, 8, 3), np.uint8), root="/runs/desk")
    d = end.row()
    assert d["best_tile"] == "tracks/5/best.png" and d["enhance_confidence"] == 0.81 and d["person"] == 2
    assert d["first_time"] == 0.5 and d["last_time"] == 2.0
    assert "snapshot" not in d and "root" not in d, "pixels and the host's paths stay out of events.jsonl"
    upd = TrackUpdated(source="desk", at=AT, track=5, frame=20, time=0.8, observations=3, enhanced=1, quality=0.7)
    assert set(upd.row()) == {"at", "source", "camera", "event", "track", "frame", "observations", "enhanced",
                              "time", "quality"}


@pytest.mark.parametrize("bad", ["/home/op/out/tracks/5/best.png", "../secret.png", "C:\\out\\best.png"])
def test_best_tile_must_be_relative_to_the_run_folder(bad: str) -> None:
    with pytest.raises(ValueError, match="relative"):
        TrackEnded(source="desk", track=5, reason="lost", observations=1, enhanced=0, best_tile=bad)


def test_json_survives_numpy_paths_and_nan() -> None:
    text = json_dumps({"a": np.float32(0.5), "b": np.int64(3), "c": np.arange(3), "d": float("nan"),
                       "e": Path("tracks/1/best.png"), "f": np.float32("nan")})
    assert json.loads(text) == {"a": 0.5, "b": 3, "c": [0, 1, 2], "d": None, "e": "tracks/1/best.png", "f": None}


def test_track_events_are_built_from_the_track(tmp_path: Path) -> None:
    track, last = a_track()
    new = track_started(track, (640, 480))
    assert (new.track, new.frame, new.time, new.score, new.top_score) == (3, 4, 0.16, 0.9, 0.9)
    assert new.box == (100.0, 50.0, 124.0, 80.0) and new.area == 720.0 and new.frame_size == (640, 480)
    assert new.snapshot is track.candidates[0].crop, "the best held crop, the camera's own pixels"
    last.enhanced, last.crop = np.zeros((128, 128, 3), np.uint8), np.zeros((128, 128, 3), np.uint8)
    last.confidence = 0.42
    track.keep(last)
    upd = track_updated(track, last, (640, 480))
    assert (upd.score, upd.top_score, upd.enhanced, upd.enhance_confidence) == (0.6, 0.9, 1, 0.42)
    assert upd.snapshot is last.crop and upd.quality == 0.3
    end = track_ended(track, "lost", (640, 480), "tracks/3/best.png", tmp_path)
    assert end.time == 0.36 and end.first_time == 0.16 and end.root == str(tmp_path.resolve())
    assert end.row()["camera"] == "127_0_0_1_18554_lobby" and end.row()["source"] == "127.0.0.1:18554/lobby"


def test_track_book_gives_frigate_style_before_and_after() -> None:
    book = TrackBook()
    t0 = 1714557600.0
    kind, before, after = book.apply(TrackStarted(source="lobby", at=t0, track=7, frame=3, time=0.12, score=0.7,
                                                  top_score=0.7, box=(0, 0, 10, 20), frame_size=(64, 48)))
    assert kind == "new" and before is None
    a = after.payload()
    assert a["id"] == "1714557600.000-lobby-7" and a["camera"] == "lobby" and a["label"] == "face"
    assert a["start_time"] == t0 and a["end_time"] is None and a["first_time"] == 0.12 and not a["ai_enhanced"]
    assert (a["score"], a["top_score"], a["box"], a["area"], a["frame_size"]) == (0.7, 0.7, [0, 0, 10, 20], 200.0,
                                                                                   [64, 48])
    assert a["has_snapshot"] is False and a["enhance_confidence"] is None
    kind, before, after = book.apply(TrackUpdated(source="lobby", at=t0 + 1, track=7, frame=30, time=1.2,
                                                  observations=9, enhanced=1, score=0.9, top_score=0.9,
                                                  enhance_confidence=0.7, snapshot=np.zeros((8, 8, 3), np.uint8)))
    assert kind == "update" and before.payload() == a
    assert after.enhanced == 1 and after.id == before.id and after.has_snapshot and after.score == 0.9
    assert book.apply(CameraOffline(source="lobby", reason="x", segment=0)) is None
    kind, before2, end = book.apply(TrackEnded(source="lobby", at=t0 + 2, track=7, reason="lost", observations=12,
                                               enhanced=2, time=2.4, best_tile="tracks/7/best.png", person=1,
                                               root="/runs/lobby"))
    assert kind == "end" and before2 == after
    e = end.payload()
    assert e["end_time"] == t0 + 2 and e["end_reason"] == "lost" and e["last_time"] == 2.4
    assert e["sub_label"] == "1" and e["enhance_confidence"] == 0.7 and e["ai_enhanced"] and e["id"] == a["id"]
    assert e["best_tile"] == "/runs/lobby/tracks/7/best.png" and e["has_snapshot"], "kept from the update"
    assert len(book) == 0, "ended tracks are forgotten"
    # an end whose start this book never saw (a sink added mid-run) still makes a complete message
    kind, before, after = TrackBook().apply(TrackEnded(source="desk", track=1, reason="lost", observations=2,
                                                       enhanced=0, time=3.0))
    assert kind == "end" and before is None and after.end_time is not None
    # ids are safe in topics and file names, whatever the camera is called
    _, _, odd = TrackBook().apply(TrackStarted(source="rtsp cam/2#a+b", at=t0, track=4, frame=0))
    assert not set(odd.id) & set("/+# ") and odd.id.endswith("-rtsp_cam_2_a_b-4")


def test_envelope_for_the_webhook() -> None:
    book = TrackBook()
    msg = envelope(TrackStarted(source="lobby/door", track=1, frame=0, time=0.0), book)
    assert msg["type"] == "new" and msg["before"] is None and msg["after"]["track"] == 1
    assert msg["event"]["event"] == "track_start" and msg["camera"] == msg["after"]["camera"] == "lobby_door"
    msg = envelope(FramesDropped(source="lobby", count=3, total=3, time=1.0), book)
    assert msg["type"] == "dropped" and "before" not in msg and msg["event"]["count"] == 3


# ============================================================================================ the bus


class Recorder:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name, self.fail = name, fail
        self.events: list[Event] = []
        self.closed = False

    def publish(self, event: Event) -> None:
        if self.fail:
            raise RuntimeError("sink broke")
        self.events.append(event)

    def stats(self) -> dict:
        return {"delivered": len(self.events)}

    def close(self, timeout: float = 5.0) -> None:
        self.closed = True


def test_one_bus_events_jsonl_first_a_failing_sink_counted_only_typed_events(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    fine, broken, shared = Recorder("fine"), Recorder("broken", fail=True), Recorder("shared")
    bus = EventBus([EventLog(tmp_path / "events.jsonl"), fine, broken])
    bus.add(shared, owned=False)
    for event, _ in EVENTS:
        bus.emit(event)
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert lines == [json.loads(json.dumps(e.row())) for e, _ in EVENTS], "on disk before emit returned"
    with pytest.raises(TypeError, match="not an event"):
        bus.emit({"source": "lobby", "event": "track_start"})  # type: ignore[arg-type]
    bus.close(timeout=1)
    bus.emit(EVENTS[0][0])  # after close: nothing
    assert bus.stats() == {"jsonl": len(EVENTS), "fine": {"delivered": len(EVENTS)},
                           "broken": {"delivered": 0, "errors": len(EVENTS)}, "shared": {"delivered": len(EVENTS)}}
    assert fine.closed and broken.closed and not shared.closed, "a shared sink is closed by its owner"
    assert sum("event sink broken failed" in r.getMessage() for r in caplog.records) == 1, "logged once"


def test_a_write_error_in_events_jsonl_reaches_the_caller(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    bus = EventBus([log])
    log._file.close()
    log._file = open("/dev/full", "w")  # noqa: SIM115 - a disk that is full
    with pytest.raises(OutputError):
        bus.emit(EVENTS[0][0])
    bus.close()


# ============================================================================================ MQTT

paho = pytest.importorskip("paho.mqtt.client")
import cv2  # noqa: E402

from pipeline.io.sinks.mqtt import MqttSink, parse_mqtt_url  # noqa: E402

SNAPSHOT = np.zeros((128, 128, 3), np.uint8)
SNAPSHOT[:, :64] = (30, 160, 220)  # two flat halves: JPEG keeps them within a few levels

needs_broker = pytest.mark.skipif(not mosq.available()[0], reason=mosq.available()[1])


Subscriber = mosq.Subscriber


@pytest.fixture
def broker(tmp_path: Path):
    with mosq.Mosquitto(tmp_path / "broker") as b:
        yield b


def retained(broker: mosq.Mosquitto, **kw: str) -> dict[str, str]:
    """What a subscriber connecting now is told at once: the retained messages."""
    sub = Subscriber(broker, **kw)
    time.sleep(0.3)
    sub.close()
    assert all(r for _, _, r in sub.messages)
    return {t: p for t, p, _ in sub.messages}


def test_parse_mqtt_url() -> None:
    assert parse_mqtt_url("mqtt://broker.lan") == {"tls": False, "host": "broker.lan", "port": 1883,
                                                   "username": None, "password": None,
                                                   "shown": "mqtt://broker.lan:1883"}
    p = parse_mqtt_url("mqtts://op%40site:p%3Ass@10.0.0.2:8884")
    assert (p["tls"], p["port"], p["username"], p["password"], p["shown"]) == (
        True, 8884, "op@site", "p:ss", "mqtts://***@10.0.0.2:8884")
    for bad, why in [("http://h", "mqtt://"), ("mqtt://", "no host"), ("mqtt://u:hunter22@h:port", "port"),
                     ("mqtt://h/topic", "only scheme"), ("mqtt://u:hunter22@[::1", "malformed")]:
        with pytest.raises(ConfigError, match=why) as e:
            parse_mqtt_url(bad)
        assert "hunter22" not in str(e.value)


@needs_broker
def test_mqtt_publishes_frigate_style_topics_in_order(broker: mosq.Mosquitto) -> None:
    sub = Subscriber(broker)
    t = time.perf_counter()
    sink = MqttSink(broker.url(), prefix="enhance", qos=1)
    assert time.perf_counter() - t < 0.5, "the constructor must not wait for the broker"
    wait_for(lambda: sink.connected, what="sink connected")
    t0 = time.time()
    events: list[Event] = [
        RunStarted(source="lobby", live=True),
        TrackStarted(source="lobby", at=t0, track=1, frame=0, time=0.0),
        TrackStarted(source="lobby/door", at=t0, track=1, frame=0, time=0.0),
        TrackUpdated(source="lobby", track=1, frame=8, time=0.32, observations=8, enhanced=1, score=0.8,
                     top_score=0.8, box=(4.0, 4.0, 20.0, 24.0), frame_size=(320, 240), enhance_confidence=0.64,
                     snapshot=SNAPSHOT),
        FramesDropped(source="lobby", count=2, total=2, time=0.4),
        TrackEnded(source="lobby", track=1, reason="disconnect", observations=9, enhanced=1, time=0.36,
                   best_tile="tracks/1/best.png"),
        CameraOffline(source="lobby", reason="end of stream", segment=0, time=0.5),
    ]
    sink.publish(events[0])
    # a status is state (the latest value is sent): wait, so that the test sees every transition
    wait_for(lambda: sub.on("enhance/lobby/status") == [("online", False)], what="online")
    for e in events[1:]:
        sink.publish(e)
    wait_for(lambda: len(sub.events()) == 4 and ("offline", False) in sub.on("enhance/lobby/status"),
             what="events and the offline status")
    sink.publish(CameraOnline(source="lobby", attempt=1, downtime_s=1.2, segment=1, time=1.7))
    sink.publish(RunEnded(source="lobby/door", status="complete", frames=40))
    wait_for(lambda: sub.on("enhance/lobby/status")[-1:] == [("online", False)], what="online again")
    sink.close()
    wait_for(lambda: ("offline", False) in sub.on("enhance/available"), what="available offline")
    sub.close()

    msgs = sub.events()
    assert [(m["type"], m["after"]["camera"]) for m in msgs] == [
        ("new", "lobby"), ("new", "lobby_door"), ("update", "lobby"), ("end", "lobby")]
    new, _, upd, end = msgs
    assert new["before"] is None and new["after"]["end_time"] is None and new["after"]["start_time"] == t0
    assert upd["before"] == new["after"] and upd["after"]["has_snapshot"] is True
    assert upd["after"]["enhance_confidence"] == 0.64 and upd["after"]["ai_enhanced"] is True
    assert (upd["after"]["score"], upd["after"]["box"], upd["after"]["area"], upd["after"]["frame_size"]) == (
        0.8, [4.0, 4.0, 20.0, 24.0], 320.0, [320, 240])
    assert end["before"] == upd["after"] and end["after"]["end_reason"] == "disconnect"
    assert end["after"]["end_time"] >= t0 and end["after"]["best_tile"] == "tracks/1/best.png"
    assert len({m["after"]["id"] for m in msgs}) == 2, "one id per track, kept from new to end"
    # a live subscriber sees retain=0 (MQTT 3.1.1 §3.3.1.3); the order per topic is the publishing order
    assert [p for p, _ in sub.on("enhance/lobby/status")] == ["online", "offline", "online"]
    assert [p for p, _ in sub.on("enhance/available")] == ["online", "offline"]
    assert [p for p, _ in sub.on("enhance/lobby_door/status")] == ["offline"], "topic-safe camera name"
    # what a dashboard connecting now learns at once: retained state, never a stale event
    # the snapshot: the best crop as JPEG, retained, on Frigate's <camera>/<label>/snapshot
    [(topic, jpeg, _)] = sub.images
    assert topic == "enhance/lobby/face/snapshot"
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == SNAPSHOT.shape and np.abs(image.astype(int) - SNAPSHOT).mean() < 3
    assert retained(broker) == {"enhance/available": "offline", "enhance/lobby/status": "online",
                                "enhance/lobby_door/status": "offline"}
    assert sink.dropped == 0 and sink.sent == 4 and sink.snapshots == 1


@needs_broker
def test_mqtt_last_will_when_the_process_dies(broker: mosq.Mosquitto) -> None:
    """SIGKILL the process that holds the sink: the broker publishes the retained "offline" will."""
    code = (
        "import sys, time\n"
        "from pipeline.io.sinks.mqtt import MqttSink\n"
        f"s = MqttSink({broker.url()!r}, prefix='cctv')\n"
        "while not s.connected: time.sleep(0.01)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        sub = Subscriber(broker, topic="cctv/#")
        wait_for(lambda: sub.on("cctv/available") == [("online", True)], what="retained online")
        proc.kill()
        wait_for(lambda: ("offline", False) in sub.on("cctv/available"), what="the last will")
        sub.close()
    finally:
        proc.kill()
        proc.wait(10)
    assert retained(broker, topic="cctv/#") == {"cctv/available": "offline"}


@needs_broker
def test_mqtt_broker_killed_mid_stream_then_back(broker: mosq.Mosquitto, caplog) -> None:
    caplog.set_level(logging.INFO)
    sub = Subscriber(broker)
    # the first retry comes 2 s after the loss: time for the test's subscriber to be back before the sink
    sink = MqttSink(broker.url(), max_queue=5, reconnect_min_s=2.0, reconnect_max_s=2.0)
    wait_for(lambda: sink.connected, what="sink connected")
    sink.publish(RunStarted(source="lobby"))
    for i in range(1, 4):
        sink.publish(TrackStarted(source="lobby", track=i, frame=i, time=i / 25))
    wait_for(lambda: len(sub.events()) == 3, what="the first events")
    sub.close()

    broker.kill()
    wait_for(lambda: not sink.connected, timeout=5, what="the sink to notice")
    times = []
    for i in range(10, 30):
        t = time.perf_counter()
        sink.publish(TrackStarted(source="lobby", track=i, frame=i, time=i / 25))
        times.append(time.perf_counter() - t)
    sink.publish(CameraOffline(source="lobby", reason="timed out", segment=0, time=1.3))
    assert max(times) < FAST_S, f"publish took {max(times) * 1000:.2f} ms with the broker gone"
    assert sink.dropped == 15 and sink.queued == 5, "20 events into a queue of 5: the 15 oldest dropped"

    broker.start()
    sub = Subscriber(broker)
    assert not sink.connected, "precondition: the subscriber is back before the sink reconnects"
    wait_for(lambda: sink.connected, timeout=15, what="the sink to reconnect")
    wait_for(lambda: len(sub.events()) == 5, what="the queued events")
    assert [m["after"]["track"] for m in sub.events()] == [25, 26, 27, 28, 29], "the newest five, in order"
    later = TrackEnded(source="lobby", track=29, reason="lost", observations=3, enhanced=0, time=1.2)
    sink.publish(later)
    wait_for(lambda: len(sub.events()) == 6, what="an event published after the reconnect")
    assert sub.events()[-1]["type"] == "end" and sub.events()[-1]["before"]["track"] == 29
    # after the reconnect the retained state was published again, latest value only
    assert ("online", False) in sub.on("enhance/available")
    assert sub.on("enhance/lobby/status")[-1] == ("offline", False)
    sink.close()
    sub.close()
    assert sink.dropped == 15
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("pipeline")]
    assert any("went away" in m for m in messages) and any("connected" in m for m in messages)


@needs_broker
def test_mqtt_broker_down_at_start(tmp_path: Path) -> None:
    b = mosq.Mosquitto(tmp_path / "late")
    t = time.perf_counter()
    sink = MqttSink(b.url(), reconnect_min_s=0.2, reconnect_max_s=0.5)
    sink.publish(RunStarted(source="desk"))
    sink.publish(TrackStarted(source="desk", track=1, frame=0, time=0.0))
    assert time.perf_counter() - t < 5 and not sink.connected  # publishing never waits for a broker (wide margin)
    with b:
        wait_for(lambda: sink.connected, timeout=60, what="the sink to connect once the broker is up")
        assert sink.flush(30) and sink.sent == 1 and sink.dropped == 0, "the event queued meanwhile went out"
        assert retained(b) == {"enhance/available": "online", "enhance/desk/status": "online"}
        sink.close()
    t = time.perf_counter()
    down = MqttSink(b.url())  # and closing a sink whose broker never came is quick too
    down.publish(RunStarted(source="desk"))
    down.close(timeout=1)
    assert time.perf_counter() - t < 15  # not the reconnect loop's minutes: a wide margin for a busy machine


@needs_broker
def test_mqtt_credentials_work_and_never_show(tmp_path: Path, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    user, password = "enhance", "Tr0ub4dor-3xyz"
    monkeypatch.setenv("MQTT_USER", user)
    monkeypatch.setenv("MQTT_PASS", password)
    with mosq.Mosquitto(tmp_path / "auth", users={user: password}) as b:
        sub = Subscriber(b, user=user, password=password)
        sink = MqttSink(f"mqtt://${{MQTT_USER}}:${{MQTT_PASS}}@127.0.0.1:{b.port}", qos=2)
        wait_for(lambda: sink.connected, what="authenticated connection")
        sink.publish(TrackStarted(source="lobby", track=1, frame=0, time=0.0))
        sink.publish(TrackEnded(source="lobby", track=1, reason=f"camera said {password}", observations=1,
                                enhanced=0, time=0.1))
        wait_for(lambda: len(sub.events()) == 2, what="events over an authenticated connection")
        sink.close()

        wrong = MqttSink(f"mqtt://{user}:not-{password}@127.0.0.1:{b.port}", reconnect_min_s=5)
        anon = MqttSink(b.url(), reconnect_min_s=5)
        wait_for(lambda: sum("refused" in r.getMessage() for r in caplog.records) == 2, what="refusals logged")
        assert not wrong.connected and not anon.connected
        assert "refused the credentials" in wrong.stats()["error"] and "error" not in sink.stats()
        shown = [repr(sink), repr(wrong), str(sink.secrets)]
        wrong.close(timeout=1)
        anon.close(timeout=1)
        sub.close()
    with pytest.raises(ConfigError, match="MQTT_NOPE") as e:
        MqttSink("mqtt://u:${MQTT_NOPE}@127.0.0.1")
    with pytest.raises(ConfigError) as e2:
        MqttSink("mqtt://${MQTT_USER}:${MQTT_PASS}@127.0.0.1:notaport")
    assert sub.events()[-1]["after"]["end_reason"] == "camera said ***"
    assert sub.events()[-1]["after"]["ai_enhanced"] is False, "the user name (a plain word) is not scrubbed"
    everything = "\n".join([*(p for _, p, _ in sub.messages), caplog.text, *shown, str(e.value), str(e2.value)])
    assert password not in everything
    assert "mqtt://***@127.0.0.1" in caplog.text


# ============================================================================================ webhook


@pytest.fixture
def endpoint(monkeypatch):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    e = Endpoint()
    yield e
    e.close()


def test_webhook_posts_json_with_expanded_secret_headers(endpoint: Endpoint, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    token = "sk-live-7f3a9c2e"
    monkeypatch.setenv("HOOK_TOKEN", token)
    sink = WebhookSink(endpoint.url("/hooks/${HOOK_TOKEN}?src=enhance"),
                       headers={"Authorization": "Bearer ${HOOK_TOKEN}", "X-Site": "hq"})
    sink.publish(TrackStarted(source="lobby", track=4, frame=1, time=0.04))
    sink.publish(TrackEnded(source="lobby", track=4, reason="lost", observations=5, enhanced=1, time=0.5,
                            best_tile="tracks/4/best.png"))
    sink.publish(CameraOffline(source="lobby", reason="end of stream", segment=0, time=0.6))
    assert sink.flush(10)
    sink.close()
    assert [b["type"] for b in endpoint.bodies] == ["new", "end", "disconnect"]
    new, end, off = endpoint.bodies
    assert new["before"] is None and new["after"]["track"] == 4 and new["event"]["event"] == "track_start"
    assert end["before"] == new["after"] and end["after"]["best_tile"] == "tracks/4/best.png"
    assert off["event"] == {**off["event"], "event": "disconnect", "reason": "end of stream", "segment": 0}
    h = endpoint.headers[0]
    assert h["Authorization"] == f"Bearer {token}" and h["X-Site"] == "hq"
    assert h["Content-Type"].startswith("application/json")
    assert endpoint.paths == [f"/hooks/{token}?src=enhance"] * 3
    assert (sink.delivered, sink.failed, sink.dropped) == (3, 0, 0)
    assert repr(sink) == f"WebhookSink(http://127.0.0.1:{endpoint.port}/…)"
    assert token not in repr(sink) + caplog.text


def test_webhook_retries_5xx_with_backoff_and_gives_up_on_4xx(endpoint: Endpoint, caplog) -> None:
    caplog.set_level(logging.INFO)
    sink = WebhookSink(endpoint.url(), retries=3, backoff_s=0.05)
    endpoint.codes.extend([503, 503])
    t = time.monotonic()
    sink.publish(TrackStarted(source="lobby", track=1, frame=0, time=0.0))
    assert sink.flush(10)
    assert time.monotonic() - t >= 0.05 + 0.1, "backoff doubles: 0.05 s, then 0.1 s"
    assert endpoint.attempts == 3 and len(endpoint.bodies) == 1
    assert (sink.delivered, sink.retried, sink.failed) == (1, 2, 0)

    endpoint.codes.extend([503] * 4)  # still failing after 1 + 3 attempts: given up, counted
    sink.publish(TrackStarted(source="lobby", track=2, frame=0, time=0.0))
    assert sink.flush(10)
    endpoint.codes.append(400)
    sink.publish(TrackStarted(source="lobby", track=3, frame=0, time=0.0))  # 400: not retried
    sink.publish(TrackStarted(source="lobby", track=4, frame=0, time=0.0))
    assert sink.flush(10)
    sink.close()
    assert endpoint.attempts == 3 + 4 + 1 + 1
    assert [b["after"]["track"] for b in endpoint.bodies] == [1, 4]
    assert (sink.delivered, sink.retried, sink.failed) == (2, 5, 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("HTTP 503" in m and "4 attempts" in m for m in warnings)
    assert any("HTTP 400" in m and "1 attempt:" in m for m in warnings)


def test_webhook_hanging_endpoint_never_slows_publish(endpoint: Endpoint) -> None:
    endpoint.release.clear()  # the endpoint accepts the request, then says nothing
    sink = WebhookSink(endpoint.url(), max_queue=3, timeout_s=10, retries=0)
    sink.publish(TrackStarted(source="lobby", track=0, frame=0, time=0.0))
    assert endpoint.entered.wait(5), "the first request is in flight"
    times = []
    for i in range(1, 50):
        t = time.perf_counter()
        sink.publish(TrackStarted(source="lobby", track=i, frame=i, time=i / 25))
        times.append(time.perf_counter() - t)
    assert max(times) < FAST_S, f"publish took {max(times) * 1000:.2f} ms with the endpoint hanging"
    assert sink.dropped == 49 - 3 and sink.queued == 3
    endpoint.release.set()  # it recovers: close() sends what is still queued
    t = time.perf_counter()
    sink.close(timeout=10)
    assert time.perf_counter() - t < 5
    assert [b["after"]["track"] for b in endpoint.bodies] == [0, 47, 48, 49]
    assert (sink.delivered, sink.dropped, sink.failed) == (4, 46, 0)


def test_webhook_down_endpoint_retries_then_close_keeps_its_deadline(monkeypatch, caplog) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    port = mosq.free_port()  # nothing listens here
    sink = WebhookSink(f"http://hook:pa55w0rd-x@127.0.0.1:{port}/x", retries=2, backoff_s=0.02)
    sink.publish(RunStarted(source="desk"))
    assert sink.flush(5)
    assert (sink.failed, sink.retried, sink.delivered) == (1, 2, 0)
    assert "Connection refused" in caplog.text or "refused" in caplog.text.lower()
    slow = WebhookSink(f"http://127.0.0.1:{port}/x", retries=50, backoff_s=1.0)
    for i in range(3):
        slow.publish(TrackStarted(source="desk", track=i, frame=i, time=0.0))
    t = time.perf_counter()
    slow.close(timeout=0.5)
    # close() keeps its deadline instead of sitting out 50 retries of 1 s backoff (~150 s): a wide margin, so
    # a busy machine does not fail it; what it proves is that the backoff was abandoned
    assert time.perf_counter() - t < 20
    # an attempt in flight when close() returned is counted when it ends: every event is accounted for
    wait_for(lambda: slow.failed + slow.dropped == 3, timeout=60, what="every event failed or dropped")
    assert slow.delivered == 0 and slow.retried < 50 * 3
    sink.close()
    assert "pa55w0rd" not in caplog.text + repr(sink)
    with pytest.raises(ConfigError, match="http"):
        WebhookSink("ftp://127.0.0.1/x")


# ============================================================================================ together


@needs_broker
def test_runner_wiring_one_bus_three_sinks(tmp_path: Path, broker: mosq.Mosquitto, endpoint: Endpoint) -> None:
    """As a session wires it: events.jsonl and the run's MQTT and webhook sinks on one bus per source."""
    sub = Subscriber(broker)
    network = Network(EventsConfig(mqtt_url=broker.url(), webhook_url=endpoint.url()))
    bus = source_events(tmp_path / "events.jsonl", network)
    for event, _ in EVENTS:
        bus.emit(event)
    bus.close()
    network.close(5)
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines] == [r["event"] for _, r in EVENTS]
    assert [b["type"] for b in endpoint.bodies] == ["run_start", "new", "end"] + [r["event"] for _, r in EVENTS[3:]]
    wait_for(lambda: len(sub.events()) == 2, what="MQTT track events")
    assert [m["type"] for m in sub.events()] == ["new", "end"]
    assert sub.on("enhance/lobby/status")[-1] == ("offline", False), "gave_up was the last word"
    stats = bus.stats()
    assert stats["jsonl"] == len(EVENTS) and stats["mqtt"]["sent"] == 2 and stats["webhook"]["delivered"] == 9
    sub.close()


@needs_broker
def test_a_broker_that_refuses_the_credentials_is_stated_on_the_terminal_and_in_the_manifest(
        tmp_path: Path, caplog) -> None:
    """The documented outcome (docs/events.md): the run completes, its exit status unchanged; the
    terminal gets one error line saying why nothing reached the broker, the manifest its `error`."""
    caplog.set_level(logging.INFO)
    with mosq.Mosquitto(tmp_path / "auth", users={"enhance": "right-pw"}) as b:
        network = Network(EventsConfig(mqtt_url=f"mqtt://enhance:wrong-pw@127.0.0.1:{b.port}"))
        [sink] = network.sinks
        wait_for(lambda: sink.error is not None, what="the refusal")
        bus = source_events(tmp_path / "events.jsonl", network)
        for event, _ in EVENTS[:3]:
            bus.emit(event)
        bus.close()
        network.close(1)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"status": "complete", "stats": {"events": bus.stats()}}))
    network.record([manifest])
    mqtt = json.loads(manifest.read_text())["stats"]["events"]["mqtt"]
    assert mqtt["error"] == "the broker refused the credentials (Not authorized)"
    assert mqtt["sent"] == 0 and mqtt["dropped"] == 2 and not mqtt["connected"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["events: mqtt mqtt://***@127.0.0.1:%d: the broker refused the credentials (Not authorized); "
                      "2 events not delivered (see the manifests' stats.events)" % b.port]
    assert "wrong-pw" not in caplog.text


def test_malformed_webhook_url_is_one_line_without_the_url() -> None:
    with pytest.raises(ConfigError, match="webhook URL is malformed") as e:
        WebhookSink("http://u:hunter22@[::1/hook")
    assert "hunter22" not in str(e.value)


@needs_broker
@pytest.mark.slow
def test_a_run_whose_broker_refuses_the_credentials(tmp_path: Path) -> None:
    """`process` with a wrong broker password: the outputs are written and the exit status is 0 (the
    documented choice); stderr says in one line that the broker refused, the manifest stores why."""
    from support.paths import MODELS, VIDEO, run_cli

    clip = VIDEO / "office_fisheye_cctv.mp4"
    if not clip.exists():
        pytest.skip(f"needs {clip}")
    out = tmp_path / "o"
    with mosq.Mosquitto(tmp_path / "auth", users={"enhance": "right-pw"}) as b:
        proc = run_cli("process", str(clip), "--out", str(out), "--models", str(MODELS), "--set",
                       "source.max_frames=20", "--set", "output.gallery=false", "--set",
                       f"events.mqtt_url=mqtt://enhance:wrong-pw@127.0.0.1:{b.port}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["stats"]["events"]["mqtt"]["error"] == "the broker refused the credentials (Not authorized)"
    said = [line for line in proc.stderr.splitlines() if "refused the credentials" in line]
    assert len(said) == 1 and "not delivered" in said[0], proc.stderr[-2000:]
    assert "wrong-pw" not in proc.stderr + proc.stdout
