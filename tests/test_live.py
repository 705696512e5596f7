"""Live cameras against a real GStreamer RTSP server on 127.0.0.1 (tests/support/rtsp_server.py, started here):
real-time reading, two cameras at once, a camera that crashes and comes back, an unreachable camera,
credentials that must never show, and a consumer too slow for the feed (drop the oldest frames)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline.core.config import SourceConfig  # noqa: E402
from pipeline.core.errors import InputError  # noqa: E402
from pipeline.io.events import CameraReconnecting  # noqa: E402
from pipeline.io.sources import LiveSource, open_source  # noqa: E402
from support import (
    media,  # noqa: E402
    rtsp,  # noqa: E402
)
from support.rtsp import RtspServer  # noqa: E402

_ok, _why = rtsp.available()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not _ok, reason=_why or "RTSP test server unavailable")]

OFFICE = rtsp.OFFICE
SHORT_FPS = 25


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    """2 s of numbered pattern frames, 160×120 H.264, a keyframe every 10 frames."""
    return media.make_video(tmp_path_factory.mktemp("live") / "short.mp4", frames=50, size=(160, 120),
                            fps=SHORT_FPS, gop=10)


@pytest.fixture(scope="module")
def server(short_clip):
    if not OFFICE.is_file():
        pytest.skip(f"{OFFICE} not present")
    with RtspServer({"office": OFFICE, "short": short_clip}, loop=True) as s:
        yield s


def watchdog(src, seconds: float) -> threading.Timer:
    """Close the source after `seconds` no matter what, so a bug cannot hang the test run."""
    t = threading.Timer(seconds, src.close)
    t.daemon = True
    t.start()
    return t


def read_for(src, seconds: float, limit: float = 30.0) -> list:
    frames = []
    guard = watchdog(src, limit)
    end = time.monotonic() + seconds
    try:
        for f in src:
            frames.append(f)
            if time.monotonic() >= end:
                break
    finally:
        guard.cancel()
    return frames


def lifecycle(events: list[dict]) -> list[dict]:
    """A camera's connection events without "dropped": that reports the reader falling behind, which happens
    whenever the machine is busy and says nothing about disconnecting and reconnecting."""
    return [e for e in events if e["event"] != "dropped"]


def assert_live_clock(frames, opened_wall: float) -> None:
    times = [f.time for f in frames]
    assert all(b > a for a, b in zip(times, times[1:])), "frame times must strictly increase"
    assert [f.index for f in frames] == list(range(len(frames)))
    caps = [f.captured for f in frames]
    assert all(c is not None for c in caps)
    assert all(b >= a for a, b in zip(caps, caps[1:]))
    assert opened_wall - 0.5 <= caps[0] and caps[-1] <= time.time() + 0.01
    # the frame clock is the arrival clock: both span the same interval
    assert times[-1] - times[0] == pytest.approx(caps[-1] - caps[0], abs=0.05)


def test_one_camera_in_real_time(server):
    opened = time.time()
    with open_source(server.url("office")) as src:
        assert isinstance(src, LiveSource) and src.live
        assert (src.width, src.height) == (640, 360) and src.fps == pytest.approx(29.97, abs=0.05)
        assert src.frame_count is None and src.duration is None
        assert src.name == f"127.0.0.1:{server.port}/office"
        t0 = time.monotonic()
        frames = read_for(src, 3.0)
        wall = time.monotonic() - t0
    assert frames[0].image.shape == (360, 640, 3) and frames[0].source == src.name
    assert {f.segment for f in frames} == {0}
    assert_live_clock(frames, opened)
    # paced by the camera (~30 fps), not decoded as fast as possible; allow for a busy 2-core machine
    rate = len(frames) / wall
    assert 15 <= rate <= 45, f"{len(frames)} frames in {wall:.2f} s"
    assert frames[-1].time - frames[0].time == pytest.approx(wall, abs=0.6)
    assert src.dropped == 0 and src.reconnects == 0


def test_two_cameras_at_once(server):
    opened = time.time()
    # the second camera over RTP/UDP instead of TCP interleaving
    with open_source(server.url("office")) as a, open_source(server.url("short") + "?transport=udp", name="door") as b:
        assert (a.width, a.height, b.width, b.height) == (640, 360, 160, 120)
        assert b.name == "door"
        got: dict[str, list] = {"office": [], "door": []}

        def pull(src, out):
            out.extend(read_for(src, 2.5))

        threads = [threading.Thread(target=pull, args=(s, got[s.name if s is b else "office"])) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
    office, door = got["office"], got["door"]
    assert len(office) >= 35 and len(door) >= 30, (len(office), len(door))
    assert_live_clock(office, opened)
    assert_live_clock(door, opened)
    assert all(f.source == "door" for f in door) and all(f.image.shape == (120, 160, 3) for f in door)
    # the made clip's frame numbers run on, wrapping at 50 when the server loops it
    idx = [media.read_index(f.image) for f in door]
    steps = [(b - a) % 50 for a, b in zip(idx, idx[1:])]
    assert sum(s == 1 for s in steps) >= 0.8 * len(steps), idx


def test_camera_crash_and_return(short_clip):
    cfg = SourceConfig(reconnect_initial_s=0.3, reconnect_max_s=1.0, read_timeout_s=3.0)
    events: list[dict] = []
    timeline: dict[str, float] = {}
    with RtspServer({"cam": short_clip}, loop=True) as srv:
        src = open_source(srv.url("cam"), cfg, on_event=lambda e: events.append(e.row()))
        guard = watchdog(src, 40)

        def crash_and_return():
            time.sleep(1.5)
            srv.kill()
            timeline["killed"] = time.monotonic()
            time.sleep(2.0)
            srv.start()
            timeline["back"] = time.monotonic()

        crasher = threading.Thread(target=crash_and_return, daemon=True)
        crasher.start()
        frames, first_after = [], None
        with src:
            for f in src:
                frames.append(f)
                if f.segment == 1 and first_after is None:
                    first_after = time.monotonic()
                if f.segment == 1 and sum(g.segment == 1 for g in frames) >= 25:
                    break
        guard.cancel()
        crasher.join(10)
    assert first_after is not None, f"no frames after the restart; events: {events}"
    events = lifecycle(events)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "disconnect" and "reconnect" in kinds and kinds[-1] == "reconnected", kinds
    assert kinds.count("reconnected") == 1 and kinds.count("disconnect") == 1
    disconnect, reconnected = events[0], events[-1]
    assert disconnect["segment"] == 0 and reconnected["segment"] == 1 and src.generation == src.reconnects == 1
    attempts = [e for e in events if e["event"] == "reconnect"]
    assert [e["attempt"] for e in attempts] == list(range(1, len(attempts) + 1))
    assert all(0.15 <= e["after_s"] <= 1.0 for e in attempts)  # 0.3 s doubling, capped at 1 s, jittered
    assert reconnected["downtime_s"] >= 1.9  # the camera was gone for 2 s
    # frames before the crash are segment 0, after it segment 1; the clock runs on across the gap
    segs = [f.segment for f in frames]
    assert segs == sorted(segs) and segs[0] == 0
    times = [f.time for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert [f.index for f in frames] == list(range(len(frames)))
    gap = next(b.time - a.time for a, b in zip(frames, frames[1:]) if b.segment != a.segment)
    assert gap >= 1.9
    assert first_after - timeline["killed"] >= 1.9
    reconnect_s = first_after - timeline["back"]
    print(f"\nfirst frame {reconnect_s:.2f} s after the camera came back (backoff ≤ 1 s + RTSP setup)")
    assert reconnect_s < 4.0


def test_close_interrupts_reconnect_wait_and_limited_attempts_give_up(short_clip):
    with RtspServer({"cam": short_clip}, loop=True) as srv:
        # close() during a long backoff wait returns at once and ends iteration
        events: list[dict] = []
        waiting = threading.Event()

        def on_event(e):
            events.append(e.row())  # LiveSource hands typed events; their events.jsonl rows are checked
            if isinstance(e, CameraReconnecting):
                waiting.set()

        src = open_source(srv.url("cam"), SourceConfig(reconnect_initial_s=30.0, reconnect_max_s=60.0),
                          on_event=on_event)
        it = iter(src)
        next(it)
        srv.kill()
        ended = threading.Event()
        threading.Thread(target=lambda: (list(it), ended.set()), daemon=True).start()
        assert waiting.wait(10), events
        t0 = time.monotonic()
        src.close()
        closed_s = time.monotonic() - t0
        assert ended.wait(2.0), "iteration did not end after close()"
        assert closed_s < 2.0 and not src._thread.is_alive()

        # reconnect_attempts=2: two tries, then the source ends by itself and says why
        srv.start()
        events.clear()
        cfg = SourceConfig(reconnect_initial_s=0.1, reconnect_max_s=0.2, reconnect_attempts=2)
        with open_source(srv.url("cam"), cfg, on_event=lambda e: events.append(e.row())) as src:
            it = iter(src)
            next(it)
            srv.kill()
            guard = watchdog(src, 20)
            t0 = time.monotonic()
            rest = list(it)
            guard.cancel()
            assert time.monotonic() - t0 < 5
    assert [e["event"] for e in lifecycle(events)] == ["disconnect", "reconnect", "reconnect", "gave_up"]
    assert events[-1]["attempts"] == 2 and "Connection refused" in events[-1]["reason"]
    assert src.errors[-1].startswith("gave up after 2 reconnect attempts")
    assert all(f.segment == 0 for f in rest)


def test_stalled_camera_times_out_and_reconnects(short_clip):
    """A camera that hangs with the connection open: the read timeout ends it, then it is reconnected."""
    events: list[dict] = []
    cfg = SourceConfig(read_timeout_s=1.0, reconnect_initial_s=0.2, reconnect_max_s=0.5)
    with RtspServer({"cam": short_clip}, loop=True) as srv:
        with open_source(srv.url("cam"), cfg, on_event=lambda e: events.append(e.row())) as src:
            guard = watchdog(src, 30)
            frames = read_for(src, 0.5)
            srv.freeze()
            frozen = time.monotonic()
            threading.Timer(4.0, srv.thaw).start()
            for f in src:
                frames.append(f)
                if f.segment == 1:
                    break
            guard.cancel()
    disconnect = next(e for e in events if e["event"] == "disconnect")
    assert disconnect["reason"] == "read error: timed out (no data for 1 s)"
    assert disconnect["wall"] - (frozen - time.monotonic() + time.time()) < 4.0  # noticed well before the thaw
    assert frames[-1].segment == 1 and src.reconnects == 1


def test_end_of_stream_reconnects(short_clip):
    """A camera whose stream ends (here: a file played once per connection) is reconnected, not finished."""
    events: list[dict] = []
    cfg = SourceConfig(reconnect_initial_s=0.2)
    with RtspServer({"cam": short_clip}, loop=False) as srv:
        with open_source(srv.url("cam"), cfg, on_event=lambda e: events.append(e.row())) as src:
            frames = []
            guard = watchdog(src, 30)
            for f in src:
                frames.append(f)
                if f.segment == 1 and sum(g.segment == 1 for g in frames) >= 10:
                    break
            guard.cancel()
    events = lifecycle(events)
    assert events[0]["event"] == "disconnect" and events[0]["reason"] == "end of stream"
    assert [e for e in events if e["event"] == "reconnected"][0]["segment"] == 1
    idx = [media.read_index(f.image) for f in frames if f.segment == 1]
    assert idx[0] < 10, "a new connection plays the clip from the start"


def test_unreachable_camera_gives_up_after_attempts():
    port = rtsp.free_port()  # nobody listens here
    cfg = SourceConfig(open_timeout_s=2.0, reconnect_attempts_at_start=3, reconnect_initial_s=0.4,
                      reconnect_max_s=10.0)
    events: list[dict] = []
    t0 = time.monotonic()
    with pytest.raises(InputError) as info:
        open_source(f"rtsp://cam-admin:Hunter2x@127.0.0.1:{port}/stream1", cfg,
                    on_event=lambda e: events.append(e.row()))
    elapsed = time.monotonic() - t0
    msg = str(info.value)
    assert msg == f"cannot open rtsp://***@127.0.0.1:{port}/stream1 after 3 attempts: Connection refused"
    # waits of 0.2–0.4 s and 0.4–0.8 s between three refused connections
    assert 0.55 <= elapsed <= 3.0, elapsed
    assert [(e["event"], e["attempt"]) for e in events] == [("reconnect", 2), ("reconnect", 3)]
    assert "Hunter2x" not in repr(events) and "cam-admin" not in repr(events)


def test_credentials_never_shown(short_clip, monkeypatch):
    user, password = "viewer", "pa55-w0rd!"
    monkeypatch.setenv("ENH_TEST_CAM_USER", user)
    monkeypatch.setenv("ENH_TEST_CAM_PASS", password)
    events: list[dict] = []
    cfg = SourceConfig(reconnect_initial_s=0.2, reconnect_max_s=0.4, reconnect_attempts_at_start=3)
    with RtspServer({"cam": short_clip}, loop=True, user=f"{user}:{password}") as srv:
        # the server really demands them: no or wrong credentials fail at once (a 401 is not retried)
        for bad in (srv.url("cam"), srv.url("cam", user=f"{user}:wrong-{password}")):
            t0 = time.monotonic()
            with pytest.raises(InputError) as info:
                open_source(bad, cfg, on_event=lambda e: events.append(e.row()))
            assert time.monotonic() - t0 < 3
            msg = str(info.value)
            assert "401" in msg and "after 1 attempt:" in msg and password not in msg and "wrong" not in msg
        assert events == []
        # right ones from the environment
        url = f"rtsp://${{ENH_TEST_CAM_USER}}:${{ENH_TEST_CAM_PASS}}@127.0.0.1:{srv.port}/cam"
        with open_source(url, cfg, on_event=lambda e: events.append(e.row())) as src:
            frames = read_for(src, 1.0)
            srv.kill()  # the reconnect path must not leak them either
            time.sleep(1.5)
            srv.start()
            more = []
            guard = watchdog(src, 20)
            for f in src:
                more.append(f)
                if f.segment == 1:
                    break
            guard.cancel()
            shown = " ".join([src.name, src.uri, repr(src), repr(events), " ".join(src.errors),
                              *{f.source for f in frames + more}])
        # inline credentials too
        with open_source(srv.url("cam", user=f"{user}:{password}"), cfg) as src2:
            frames2 = read_for(src2, 0.5)
            shown += " " + " ".join([src2.name, src2.uri, repr(src2), frames2[0].source])
    assert frames and more and more[-1].segment == 1 and frames2
    assert src.uri == f"rtsp://***@127.0.0.1:{srv.port}/cam" and src.name == f"***@127.0.0.1:{srv.port}/cam"
    assert {"disconnect", "reconnect", "reconnected"} <= {e["event"] for e in events}
    for secret in (password, user, "pa55"):
        assert secret not in shown, secret


def test_slow_consumer_gets_recent_frames(server):
    cfg = SourceConfig(live_queue=4)
    events: list[dict] = []
    frames, ages = [], []
    with open_source(server.url("office"), cfg, on_event=lambda e: events.append(e.row())) as src:
        guard = watchdog(src, 30)
        end = time.monotonic() + 3.0
        for f in src:
            ages.append(time.time() - f.captured)
            frames.append(f)
            if time.monotonic() >= end:
                break
            time.sleep(0.2)  # 5 fps of work against a 30 fps camera
        guard.cancel()
        dropped, received = src.dropped, src.received
    assert dropped > 30, dropped
    assert dropped + len(frames) <= received <= dropped + len(frames) + cfg.live_queue + 1
    # never more than a queue's worth behind (4 frames × 0.2 s), however long it runs
    assert max(ages[3:]) < 1.2, ages
    assert_live_clock(frames, frames[0].captured)
    reports = [e for e in events if e["event"] == "dropped"]
    assert reports and sum(e["count"] for e in reports) <= dropped and reports[-1]["total"] <= dropped
    assert all(b["time"] - a["time"] >= 0.9 for a, b in zip(reports, reports[1:]))  # rate-limited

