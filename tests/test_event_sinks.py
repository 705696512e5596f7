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

import pytest

from pipeline.core.errors import ConfigError
from pipeline.io.events import (
    CameraOffline,
    CameraOnline,
    DictSink,
    Event,
    EventBus,
    FramesDropped,
    OtherEvent,
    RunEnded,
    RunStarted,
    TrackBook,
    TrackEnded,
    TrackStarted,
    TrackUpdated,
    envelope,
    from_dict,
    json_dumps,
)
from pipeline.io.sinks.events import EventLog
from pipeline.io.sinks.webhook import WebhookSink

sys.path.insert(0, str(Path(__file__).resolve().parent))
import broker as mosq  # noqa: E402
from endpoint import PROXY_VARS, Endpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# publish must return within this, whatever the broker or endpoint is doing: a publish that waited would take
# the endpoint's 10 s timeout or a connection attempt, so 1 s still tells them apart on a busy machine (where a
# thread may wait a few ms for the GIL or a core at any time)
FAST_S = 1.0

# What the runner and LiveSource pass to EventLog today (pipeline/runner.py, pipeline/sources.py `_emit`).
TODAY = [
    {"source": "lobby", "event": "track_start", "track": 3, "frame": 41, "time": 1.64},
    {"source": "lobby", "event": "track_end", "track": 3, "reason": "lost", "observations": 17, "enhanced": 3,
     "last_time": 2.96},
    {"source": "lobby", "event": "run_end", "status": "complete", "frames": 250},
    {"source": "lobby", "event": "disconnect", "reason": "end of stream", "segment": 0, "time": 7.5,
     "wall": 1714557600.123456},
    {"source": "lobby", "event": "reconnect", "attempt": 1, "after_s": 0.374, "reason": "end of stream",
     "time": 7.5, "wall": 1714557600.125},
    {"source": "lobby", "event": "reconnected", "attempt": 2, "segment": 1, "downtime_s": 1.912, "time": 9.41,
     "wall": 1714557602.04},
    {"source": "lobby", "event": "gave_up", "attempts": 5, "reason": "connection refused", "time": 30.0,
     "wall": 1714557623.5},
    {"source": "lobby", "event": "dropped", "count": 12, "total": 40, "time": 11.0, "wall": 1714557603.6},
]


def without_at(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "at"}


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


# ============================================================================================ schema


@pytest.mark.parametrize("row", TODAY, ids=[r["event"] for r in TODAY])
def test_today_rows_round_trip_through_the_schema(row: dict) -> None:
    event = from_dict(row)
    assert event.kind == row["event"] and event.source == event.camera == "lobby"
    assert not event.extra, "every field of today's rows is a schema field"
    d = event.to_dict()
    assert without_at(d) == row  # the same fields, the same values, nothing added while unknown
    assert list(without_at(d)) == list(row)  # and in the same order
    if "wall" in row:
        assert event.at == row["wall"]
    assert from_dict(d).to_dict() == d  # "at" is written to the millisecond, as EventLog does


def test_events_jsonl_lines_read_back_unchanged(tmp_path: Path) -> None:
    """Lines EventLog wrote (with its own "at") parse and write back as the same line."""
    log = EventLog(tmp_path / "events.jsonl")
    for row in TODAY:
        log(dict(row))
    log.close()
    for line in (tmp_path / "events.jsonl").read_text().splitlines():
        row = json.loads(line)
        again = from_dict(row).to_dict()
        if "wall" in row:  # at = when the camera saw it; the logged "at" is a moment later
            assert without_at(again) == without_at(row)
            assert from_dict(row).at == row["wall"]
        else:
            assert again == row


def test_the_new_classes_write_what_the_runner_writes_today() -> None:
    at = 1714557600.5
    assert TrackStarted(source="desk", at=at, track=5, frame=9, time=0.36).to_dict() == {
        "at": "2024-05-01T10:00:00.500+00:00", "source": "desk", "event": "track_start", "track": 5, "frame": 9,
        "time": 0.36}
    assert without_at(TrackEnded(source="desk", track=5, reason="disconnect", observations=4, enhanced=1,
                                 time=2.0).to_dict()) == {
        "source": "desk", "event": "track_end", "track": 5, "reason": "disconnect", "observations": 4,
        "enhanced": 1, "last_time": 2.0}
    assert without_at(RunEnded(source="desk", status="interrupted", frames=12).to_dict()) == {
        "source": "desk", "event": "run_end", "status": "interrupted", "frames": 12}
    assert CameraOffline(source="desk", at=at, reason="timed out", segment=2, time=3.0).to_dict()["wall"] == at


def test_optional_fields_are_written_only_when_known() -> None:
    end = TrackEnded(source="desk", at=1714557600.5, track=5, reason="lost", observations=4, enhanced=2, time=2.0,
                     first_time=0.5, best_tile=Path("tracks/5/best.png"), confidence=0.81, person=2)
    d = end.to_dict()
    assert d["best_tile"] == "tracks/5/best.png" and d["confidence"] == 0.81 and d["person"] == 2
    assert d["first_time"] == 0.5 and d["last_time"] == 2.0
    assert from_dict(d) == end
    upd = TrackUpdated(source="desk", at=1714557600.25, track=5, frame=20, time=0.8, observations=3, enhanced=1,
                       best_tile="tracks/5/f000020_enhanced.png", quality=0.7)
    assert set(upd.to_dict()) == {"at", "source", "event", "track", "frame", "observations", "enhanced", "time",
                                  "best_tile", "quality"}
    assert from_dict(upd.to_dict()) == upd


@pytest.mark.parametrize("bad", ["/home/op/out/tracks/5/best.png", "../secret.png", "C:\\out\\best.png"])
def test_best_tile_must_be_relative_to_the_run_folder(bad: str) -> None:
    with pytest.raises(ValueError, match="relative"):
        TrackEnded(source="desk", track=5, reason="lost", observations=1, enhanced=0, best_tile=bad)


def test_unknown_kinds_and_new_fields_survive_a_round_trip() -> None:
    row = {"at": "2024-05-01T10:00:00.000+00:00", "source": "desk", "event": "zone_enter", "zone": "door",
           "time": 1.5}
    ev = from_dict(row)
    assert isinstance(ev, OtherEvent) and ev.kind == "zone_enter" and ev.time == 1.5
    assert ev.to_dict() == row
    newer = {**TODAY[0], "at": "2024-05-01T10:00:00.000+00:00", "box": [1, 2, 3, 4]}
    ev = from_dict(newer)
    assert ev.extra == {"box": [1, 2, 3, 4]} and ev.to_dict() == newer


def test_a_row_missing_a_field_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'frame'"):
        from_dict({"source": "desk", "event": "track_start", "track": 1, "time": 0.0})


def test_json_survives_numpy_paths_and_nan() -> None:
    np = pytest.importorskip("numpy")
    text = json_dumps({"a": np.float32(0.5), "b": np.int64(3), "c": np.arange(3), "d": float("nan"),
                       "e": Path("tracks/1/best.png"), "f": np.float32("nan")})
    assert json.loads(text) == {"a": 0.5, "b": 3, "c": [0, 1, 2], "d": None, "e": "tracks/1/best.png", "f": None}


def test_track_book_gives_frigate_style_before_and_after() -> None:
    book = TrackBook()
    t0 = 1714557600.0
    new = book.apply(TrackStarted(source="lobby", at=t0, track=7, frame=3, time=0.12))
    assert new is not None
    kind, before, after = new
    assert kind == "new" and before is None
    a = after.to_dict()
    assert a["id"] == "1714557600.000-lobby-7" and a["camera"] == "lobby" and a["label"] == "face"
    assert a["start_time"] == t0 and a["end_time"] is None and a["first_time"] == 0.12 and not a["ai_enhanced"]
    kind, before, after = book.apply(TrackUpdated(source="lobby", at=t0 + 1, track=7, frame=30, time=1.2,
                                                  observations=9, enhanced=1, best_tile="tracks/7/f000030_enhanced.png",
                                                  confidence=0.7))
    assert kind == "update" and before.to_dict() == a
    assert after.best_tile == "tracks/7/f000030_enhanced.png" and after.enhanced == 1 and after.id == before.id
    assert book.apply(CameraOffline(source="lobby", reason="x", segment=0)) is None
    kind, before2, end = book.apply(TrackEnded(source="lobby", at=t0 + 2, track=7, reason="lost", observations=12,
                                               enhanced=2, time=2.4, best_tile="tracks/7/best.png", person=1))
    assert kind == "end" and before2 == after
    e = end.to_dict()
    assert e["end_time"] == t0 + 2 and e["end_reason"] == "lost" and e["last_time"] == 2.4
    assert e["sub_label"] == "1" and e["confidence"] == 0.7 and e["ai_enhanced"] and e["id"] == a["id"]
    assert len(book) == 0, "ended tracks are forgotten"
    # an end whose start this book never saw (a sink added mid-run) still makes a complete message
    kind, before, after = TrackBook().apply(TrackEnded(source="desk", track=1, reason="lost", observations=2,
                                                       enhanced=0, time=3.0))
    assert kind == "end" and before is None and after.end_time is not None


def test_envelope_for_the_webhook() -> None:
    book = TrackBook()
    msg = envelope(TrackStarted(source="lobby", track=1, frame=0, time=0.0), book)
    assert msg["type"] == "new" and msg["before"] is None and msg["after"]["track"] == 1
    assert msg["event"]["event"] == "track_start" and msg["camera"] == "lobby"
    msg = envelope(FramesDropped(source="lobby", count=3, total=3, time=1.0), book)
    assert msg["type"] == "dropped" and "before" not in msg and msg["event"]["count"] == 3


# ============================================================================================ fan-out


class Recorder:
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.events: list[Event] = []
        self.delay, self.fail = delay, fail
        self.closed = False

    def publish(self, event: Event) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("sink broke")
        self.events.append(event)

    def close(self, timeout: float = 5.0) -> None:
        self.closed = True


def test_bus_keeps_a_failing_or_slow_sink_away_from_the_caller(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    fine, broken, slow = Recorder(), Recorder(fail=True), Recorder(delay=0.5)
    log = EventLog(tmp_path / "events.jsonl")
    bus = EventBus()
    bus.add(DictSink(log), name="jsonl", inline=True)  # on disk before emit returns
    bus.add(fine, name="fine")
    bus.add(broken, name="broken", inline=True)
    bus.add(slow, name="slow", max_queue=3)
    on_event = bus.for_source("lobby")  # what the runner would hand a LiveSource
    times = []
    for row in TODAY:
        t = time.perf_counter()
        on_event({k: v for k, v in row.items() if k != "source"})
        times.append(time.perf_counter() - t)
    assert max(times) < 0.05, f"emit took {max(times) * 1000:.1f} ms with a 0.5 s sink attached"
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [without_at(x) for x in lines] == TODAY, "the jsonl sink wrote today's rows before emit returned"
    assert bus.emit({"source": "lobby", "event": "track_start"}) is None and bus.invalid == 1
    bus.close(timeout=3)
    stats = bus.stats()
    assert stats["fine"]["delivered"] == len(TODAY) and [e.kind for e in fine.events] == [r["event"] for r in TODAY]
    assert stats["broken"]["errors"] == len(TODAY) and stats["broken"]["delivered"] == 0
    # 8 events into a queue of 3 behind a 0.5 s sink: the oldest were dropped, the newest delivered
    assert stats["slow"]["dropped"] >= len(TODAY) - 4 and stats["slow"]["delivered"] >= 3
    assert [e.kind for e in slow.events][-3:] == [r["event"] for r in TODAY][-3:]
    assert fine.closed and slow.closed
    assert sum("event sink broken failed" in r.getMessage() for r in caplog.records) == 1, "logged once"


# ============================================================================================ MQTT

paho = pytest.importorskip("paho.mqtt.client")
from pipeline.io.sinks.mqtt import MqttSink, parse_mqtt_url  # noqa: E402

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
        TrackUpdated(source="lobby", track=1, frame=8, time=0.32, observations=8, enhanced=1,
                     best_tile="tracks/1/f000008_enhanced.png", confidence=0.64),
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
        ("new", "lobby"), ("new", "lobby/door"), ("update", "lobby"), ("end", "lobby")]
    new, _, upd, end = msgs
    assert new["before"] is None and new["after"]["end_time"] is None and new["after"]["start_time"] == t0
    assert upd["before"] == new["after"] and upd["after"]["best_tile"] == "tracks/1/f000008_enhanced.png"
    assert upd["after"]["confidence"] == 0.64 and upd["after"]["ai_enhanced"] is True
    assert end["before"] == upd["after"] and end["after"]["end_reason"] == "disconnect"
    assert end["after"]["end_time"] >= t0 and end["after"]["best_tile"] == "tracks/1/best.png"
    assert len({m["after"]["id"] for m in msgs}) == 2, "one id per track, kept from new to end"
    # a live subscriber sees retain=0 (MQTT 3.1.1 §3.3.1.3); the order per topic is the publishing order
    assert [p for p, _ in sub.on("enhance/lobby/status")] == ["online", "offline", "online"]
    assert [p for p, _ in sub.on("enhance/available")] == ["online", "offline"]
    assert [p for p, _ in sub.on("enhance/lobby_door/status")] == ["offline"], "topic-safe camera name"
    # what a dashboard connecting now learns at once: retained state, never a stale event
    assert retained(broker) == {"enhance/available": "offline", "enhance/lobby/status": "online",
                                "enhance/lobby_door/status": "offline"}
    assert sink.dropped == 0 and sink.sent == 4


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
def test_runner_style_wiring_one_bus_three_sinks(tmp_path: Path, broker: mosq.Mosquitto, endpoint: Endpoint) -> None:
    """The wiring proposed for the runner: today's dicts in, events.jsonl unchanged, MQTT and webhook fed."""
    sub = Subscriber(broker)
    bus = EventBus()
    bus.add(DictSink(EventLog(tmp_path / "events.jsonl")), name="jsonl", inline=True)
    bus.add(MqttSink(broker.url()), name="mqtt")
    bus.add(WebhookSink(endpoint.url()), name="webhook")
    bus.emit(RunStarted(source="lobby", live=True))
    for row in TODAY:
        bus.emit(dict(row))
    bus.close(timeout=5)
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [without_at(x) for x in lines[1:]] == TODAY
    assert [b["type"] for b in endpoint.bodies] == ["run_start", "new", "end"] + [r["event"] for r in TODAY[2:]]
    wait_for(lambda: len(sub.events()) == 2, what="MQTT track events")
    assert [m["type"] for m in sub.events()] == ["new", "end"]
    assert sub.on("enhance/lobby/status")[-1] == ("offline", False), "gave_up was the last word"
    assert {k: v["errors"] for k, v in bus.stats().items()} == {"jsonl": 0, "mqtt": 0, "webhook": 0}
    sub.close()


def test_malformed_webhook_url_is_one_line_without_the_url() -> None:
    with pytest.raises(ConfigError, match="webhook URL is malformed") as e:
        WebhookSink("http://u:hunter22@[::1/hook")
    assert "hunter22" not in str(e.value)
