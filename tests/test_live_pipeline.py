"""The whole pipeline on live RTSP cameras served by a real GStreamer RTSP server on 127.0.0.1."""

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import av
import pytest

from pipeline.stages.enhance.generator import NAME
from support import rtsp
from support.paths import MODELS, ROOT, VIDEO, needs_shared, report_runs, run_cli

OK, WHY = rtsp.available()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not OK, reason=f"GStreamer RTSP server unavailable: {WHY}"), needs_shared]
OFFICE = VIDEO / "office_fisheye_cctv.mp4"
FAST = ["--set", "enhance.policy=best_k", "--set", "detect.stride=2", "--quiet"]


def _playable(path):
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _segments(out):
    segs = sorted(out.glob("annotated_*.mp4"))
    assert segs, list(out.iterdir())
    return segs


@pytest.fixture(scope="module")
def server():
    with rtsp.RtspServer({"cam1": OFFICE, "cam2": OFFICE}, loop=True) as s:
        yield s


def test_one_camera_live(server, tmp_path):
    out = tmp_path / "o"
    started = datetime.now(timezone.utc)
    proc = run_cli("process", server.url("cam1"), "--out", str(out), "--models", str(MODELS),
                   "--set", "source.max_frames=60", *FAST, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ended = datetime.now(timezone.utc)
    tracks = [json.loads(p.read_text()) for p in sorted((out / "tracks").glob("*/track.json"))]
    assert tracks
    for t in tracks:  # when the camera saw each face, on the wall clock: a live feed's stream seconds say little
        seen = [datetime.fromisoformat(o["at"]) for o in t["observations"]]
        assert started < seen[0] == datetime.fromisoformat(t["first_seen"]) <= seen[-1] < ended
        assert seen[-1] == datetime.fromisoformat(t["last_seen"]) and seen == sorted(seen)
    page = (out / "report.html").read_text()
    assert f"(seen {tracks[0]['first_seen'][:10]} {tracks[0]['first_seen'][11:19]}–" in page
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stats"]["frames"] == 60
    assert manifest["stats"]["latency"]["samples"] == 60
    assert sum(_playable(p) for p in _segments(out)) == 60
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "run_end"
    (row,) = report_runs(out / "report.html")
    assert row["source"] == server.url("cam1") and row["status"] == "complete" and row["frames"] == "60"
    assert row["generator"].startswith(NAME) and row["finished"]


def test_two_cameras_at_once(server, tmp_path):
    out = tmp_path / "o"
    cfg = tmp_path / "cams.yaml"
    cfg.write_text(f"sources:\n  - {{name: lobby, uri: '{server.url('cam1')}'}}\n"
                   f"  - {{name: desk, uri: '{server.url('cam2')}'}}\nsource:\n  max_frames: 45\n")
    proc = run_cli("process", "--out", str(out), "--models", str(MODELS), "--config", str(cfg), *FAST, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for cam in ("lobby", "desk"):
        manifest = json.loads((out / cam / "manifest.json").read_text())
        assert manifest["stats"]["frames"] == 45
        assert sum(_playable(p) for p in _segments(out / cam)) == 45
    rows = report_runs(out / "report.html")  # one report over both cameras
    assert sorted(r["source"] for r in rows) == sorted([server.url("cam1"), server.url("cam2")])
    assert all(r["status"] == "complete" and r["frames"] == "45" and r["finished"] for r in rows)


def test_server_restart_reconnects_and_segments_stay_playable(tmp_path):
    out = tmp_path / "o"
    with rtsp.RtspServer({"cam": OFFICE}, loop=True) as s:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "process", s.url("cam"), "--out", str(out), "--models", str(MODELS),
             "--set", "source.max_frames=150", "--set", "source.read_timeout_s=2", "--set", "source.reconnect_max_s=1",
             # this test is about the restart, not start-up: a server still prerolling its first client
             # ("Invalid data found") must not end the run before the restart happens
             "--set", "source.reconnect_attempts_at_start=10",
             *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not (out / "faces.csv").exists():
            time.sleep(0.2)
        time.sleep(2)
        s.kill()
        time.sleep(2)
        s.start()
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert "disconnect" in kinds and "reconnected" in kinds, kinds
    ends = [e for e in events if e["event"] == "track_end"]
    assert all(e["reason"] in ("disconnect", "lost", "end of input") for e in ends)
    segs = _segments(out)
    assert len(segs) >= 2  # a new segment after the reconnect
    assert sum(_playable(p) for p in segs) == 150
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stats"]["reconnects"] >= 1


def test_unreachable_camera_is_one_clear_line(tmp_path):
    port = rtsp.free_port()
    t = time.time()
    proc = run_cli("process", f"rtsp://127.0.0.1:{port}/cam", "--out", str(tmp_path / "o"), "--models", str(MODELS),
                   "--set", "source.reconnect_attempts_at_start=2", "--set", "source.reconnect_initial_s=0.2",
                   "--set", "source.open_timeout_s=1", "--quiet", timeout=120)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"127.0.0.1:{port}" in err and "2 attempts" in err
    assert time.time() - t < 60


def test_credentials_never_written(tmp_path):
    out = tmp_path / "o"
    with rtsp.RtspServer({"cam": OFFICE}, loop=True, user="operator:s3cr3t-pw") as s:
        url = s.url("cam").replace("rtsp://", "rtsp://${CAM_USER}:${CAM_PASS}@")
        proc = run_cli("process", url, "--out", str(out), "--models", str(MODELS), "--set", "source.max_frames=20",
                       *FAST, env={"CAM_USER": "operator", "CAM_PASS": "s3cr3t-pw"}, timeout=300)
        assert proc.returncode == 0, proc.stderr
        # and with the credentials in the URL itself
        out2 = tmp_path / "o2"
        proc2 = run_cli("process", s.url("cam", user="operator:s3cr3t-pw"), "--out", str(out2), "--models",
                        str(MODELS), "--set", "source.max_frames=20", *FAST, timeout=300)
        assert proc2.returncode == 0, proc2.stderr
    for p in [*out.rglob("*"), *out2.rglob("*")]:
        assert "s3cr3t" not in p.name
        if p.is_file() and p.suffix in (".json", ".jsonl", ".csv", ".html"):
            assert "s3cr3t" not in p.read_text(), p
    for text in (proc.stdout, proc.stderr, proc2.stdout, proc2.stderr):
        assert "s3cr3t" not in text


def test_sigint_during_live_run(server, tmp_path):
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "process", server.url("cam1"), "--out", str(out),
                             "--models", str(MODELS), *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "faces.csv").exists():
        time.sleep(0.2)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert sum(_playable(p) for p in _segments(out)) == manifest["stats"]["frames"] > 0


def test_a_camera_down_at_the_start_is_waited_for_when_asked(tmp_path):
    """`source.reconnect_attempts_at_start=0` (a camera service): a camera that is down when the run starts
    is retried with backoff until it comes up, then processed; a signal while waiting ends it cleanly."""
    port = rtsp.free_port()
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "process", f"rtsp://127.0.0.1:{port}/cam", "--out", str(out),
         "--models", str(MODELS), "--set", "source.reconnect_attempts_at_start=0", "--set", "source.open_timeout_s=1",
         "--set", "source.reconnect_max_s=1", "--set", "source.max_frames=30", *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        time.sleep(8)  # several attempts fail meanwhile (the default, 3, would have given up by now)
        assert proc.poll() is None, proc.communicate()
        with rtsp.RtspServer({"cam": OFFICE}, loop=True, port=port):
            _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "is down (attempt 1" in stderr and "retrying" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["stats"]["frames"] == 30

    waiting = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "process", f"rtsp://127.0.0.1:{port}/cam", "--out", str(tmp_path / "w"),
         "--models", str(MODELS), "--set", "source.reconnect_attempts_at_start=0", "--set", "source.open_timeout_s=1",
         "--set", "source.reconnect_max_s=1", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT)
    deadline = time.time() + 120
    lines = []
    while time.time() < deadline and not any("is down" in x for x in lines):
        lines.append(waiting.stderr.readline())
    waiting.send_signal(signal.SIGTERM)
    _, rest = waiting.communicate(timeout=60)
    assert waiting.returncode == 143 and "interrupted by SIGTERM" in rest, "".join(lines) + rest
    assert not (tmp_path / "w").exists()
