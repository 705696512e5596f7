"""Acceptance: live events from a real run to the outside world.

A live RTSP run (the GStreamer test camera, with a password) starts, loses its camera, gets it back and
ends, while a paho client subscribed to a real Mosquitto broker (with a password) and a local HTTP endpoint
listen: new/update/end track events and offline/online camera status must arrive in order, with no
password anywhere. Then the same with the broker killed mid-run: the run completes and the events that
never reached the broker are counted in the manifest. Plus `--progress json` on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from support import broker as mosq
from support import rtsp
from support.endpoint import PROXY_VARS, Endpoint
from support.paths import MODELS, ROOT, VIDEO, needs_shared

pytestmark = [
    needs_shared,
    pytest.mark.slow,
    pytest.mark.skipif(not rtsp.available()[0], reason=f"GStreamer RTSP server unavailable: {rtsp.available()[1]}"),
    pytest.mark.skipif(not mosq.available()[0], reason=mosq.available()[1]),
]
pytest.importorskip("paho.mqtt.client")

OFFICE = VIDEO / "office_fisheye_cctv.mp4"
SECRETS = {"MQTT_PASS": "mq-s3cret-pw", "CAM_PASS": "cam-s3cret-pw", "HOOK_TOKEN": "hook-s3cret-tok"}
FRAMES = 150


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}  # the endpoint is on 127.0.0.1
    return env | SECRETS | {"PYTHONUNBUFFERED": "1"}


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def live_run(tmp_path: Path, broker: mosq.Mosquitto, endpoint: Endpoint, sub: mosq.Subscriber,
             kill_broker: bool = False) -> tuple[subprocess.CompletedProcess, Path, float | None]:
    """One live run: the camera is killed once faces are flowing and restarted 2 s later; with
    `kill_broker` the broker is SIGKILLed as soon as the subscriber has seen the first track event.
    Returns the finished process, its output folder and when the broker was killed (monotonic)."""
    out = tmp_path / "o"
    with rtsp.RtspServer({"cam": OFFICE}, loop=True, user="operator:" + SECRETS["CAM_PASS"]) as cam:
        url = cam.url("cam").replace("rtsp://", "rtsp://operator:${CAM_PASS}@")
        cmd = [sys.executable, str(ROOT / "run.py"), "process", url, "--out", str(out), "--models", str(MODELS),
               "--set", f"source.max_frames={FRAMES}", "--set", "source.read_timeout_s=2",
               "--set", "source.reconnect_max_s=1", "--set", "source.reconnect_attempts_at_start=10",
               "--set", "enhance.policy=best_k", "--set", "detect.stride=2",
               "--set", f"events.mqtt_url=mqtt://enhance:${{MQTT_PASS}}@127.0.0.1:{broker.port}",
               "--set", f"events.webhook_url={endpoint.url('/hook')}",
               "--set", "events.webhook_headers={Authorization: 'Bearer ${HOOK_TOKEN}'}",
               "--progress", "json", "--progress-interval", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
        killed_at = None
        try:
            if kill_broker:
                _wait(lambda: sub.events() or proc.poll() is not None, 180, "the first track event")
                broker.kill()
                killed_at = time.monotonic()
            _wait(lambda: (out / "faces.csv").exists() or proc.poll() is not None, 180, "faces.csv")
            _wait(lambda: any(e["type"] == "new" for e in endpoint.bodies) or proc.poll() is not None, 60,
                  "a track")
            time.sleep(1.5)
            cam.kill()  # the camera drops
            time.sleep(2)
            cam.start()  # and comes back on the same port
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    time.sleep(0.5)  # the subscriber's last messages
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr), out, killed_at


def _no_secret_anywhere(texts: list[str], out: Path) -> None:
    for text in texts:
        for secret in SECRETS.values():
            assert secret not in text, text[:300]
    for p in out.rglob("*"):
        if p.is_file() and p.suffix in (".json", ".jsonl", ".csv", ".html", ".txt"):
            body = p.read_text(errors="replace")
            assert not any(s in body for s in SECRETS.values()), p


def _progress_lines(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _track_order(events: list[dict]) -> dict[str, list[str]]:
    """Per track id (Frigate-style, unique across reconnects), the message types in arrival order."""
    seq: dict[str, list[str]] = {}
    for e in events:
        seq.setdefault(e["after"]["id"], []).append(e["type"])
    return seq


@pytest.fixture
def endpoint():
    e = Endpoint()
    yield e
    e.close()


@pytest.fixture
def broker(tmp_path: Path):
    with mosq.Mosquitto(tmp_path / "broker", users={"enhance": SECRETS["MQTT_PASS"], "watcher": "w"}) as b:
        yield b


@pytest.fixture
def sub(broker: mosq.Mosquitto):
    s = mosq.Subscriber(broker, user="watcher", password="w")
    yield s
    s.close()


def test_live_run_camera_lost_and_back_reaches_mqtt_and_webhook_in_order(tmp_path, broker, endpoint, sub):
    proc, out, _ = live_run(tmp_path, broker, endpoint, sub)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["stats"]["frames"] == FRAMES
    assert manifest["stats"]["reconnects"] >= 1
    jsonl = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in jsonl]
    assert "disconnect" in kinds and "reconnected" in kinds, kinds

    # MQTT, camera status (retained state): up, down when the camera drops, up again, down at the end
    statuses = [(t, p) for t, p, _ in sub.messages if t.endswith("/status")]
    assert len({t for t, _ in statuses}) == 1, statuses
    assert [p for _, p in statuses] == ["online", "offline", "online", "offline"], statuses
    assert [p for p, _ in sub.on("enhance/available")][-1] == "offline"

    # MQTT, track events: every track new → update* → end, each message once, as events.jsonl has them
    events = sub.events()
    # one camera slug: in the status topic, the payloads, the ids, events.jsonl; ids safe in topics and files
    slug = statuses[0][0].split("/")[1]
    assert {e["after"]["camera"] for e in events} == {x["camera"] for x in jsonl} == {slug}
    assert not set(slug) & set("/:.@ ") and all("/" not in e["after"]["id"] for e in events)
    # Frigate's fields: the detector's score and top score, the box in a frame of the stated size
    for e in events:
        a = e["after"]
        assert 0 < a["score"] <= a["top_score"] <= 1 and len(a["box"]) == 4 and a["area"] > 0
        x1, y1, x2, y2 = a["box"]
        fw, fh = a["frame_size"]
        assert 0 <= x1 < x2 <= fw + 1 and 0 <= y1 < y2 <= fh + 1
    # the snapshot topic: the best crop as a JPEG, retained
    snaps = [(t, p) for t, p, _ in sub.images]
    assert snaps and {t for t, _ in snaps} == {f"enhance/{slug}/face/snapshot"}
    crop = cv2.imdecode(np.frombuffer(snaps[-1][1], np.uint8), cv2.IMREAD_COLOR)
    assert crop is not None and crop.shape == (128, 128, 3)
    seq = _track_order(events)
    assert seq and all(s[0] == "new" and s[-1] == "end" and set(s[1:-1]) <= {"update"} for s in seq.values()), seq
    assert any("update" in s for s in seq.values()), seq
    assert len(seq) == kinds.count("track_start") == kinds.count("track_end")
    assert sum(s.count("update") for s in seq.values()) == kinds.count("track_update")
    reasons = {e["after"]["end_reason"] for e in events if e["type"] == "end"}
    assert "disconnect" in reasons and reasons & {"end of input", "stopped"}, reasons
    assert all(e["after"]["best_tile"] and (out / e["after"]["best_tile"]).is_file()
               for e in events if e["type"] == "end" and e["after"]["enhanced"])
    # across topics: tracks ended by the drop began before it; others began after the camera came back
    order = [(t.endswith("/status") and p) or json.loads(p)["type"] for t, p, _ in sub.messages
             if t.endswith(("/status", "/events"))]
    assert "new" in order[:order.index("offline")]
    assert "new" in order[order.index("online", order.index("offline")):]

    # webhook: the same track events and camera events, in the order they happened
    hook = [b["type"] for b in endpoint.bodies]
    assert [t for t in hook if t in ("new", "update", "end")] == [e["type"] for e in events]
    assert [t for t in hook if t in ("run_start", "disconnect", "reconnected", "run_end")] == \
           ["run_start", "disconnect", "reconnected", "run_end"], hook
    assert {h.get("Authorization") for h in endpoint.headers} == {"Bearer " + SECRETS["HOOK_TOKEN"]}
    assert endpoint.paths and set(endpoint.paths) == {"/hook"}

    stats = manifest["stats"]["events"]
    assert stats["mqtt"]["dropped"] == 0 and stats["mqtt"]["sent"] == len(events)
    assert stats["webhook"]["delivered"] == len(endpoint.bodies) and stats["webhook"]["dropped"] == 0

    # --progress json: a line a second (also while the camera was away), the last one final
    lines = _progress_lines(proc.stderr)
    assert lines[-1]["state"] == "final" and [x["state"] for x in lines].count("final") == 1
    assert lines[-1]["frames"] == FRAMES and lines[-1]["sources"][0]["state"] == "complete"
    assert len(lines) >= lines[-1]["elapsed_s"] // 3  # a timer line every second; a busy machine delays some
    assert all(x["frames"] <= y["frames"] for x, y in zip(lines, lines[1:]))

    print(f"{len(sub.messages)} MQTT messages: {len(seq)} tracks, {len(events)} track events "
          f"({sum(s.count('update') for s in seq.values())} updates), statuses {[p for _, p in statuses]}; "
          f"{len(endpoint.bodies)} webhook posts; {len(lines)} progress lines over {lines[-1]['elapsed_s']} s")
    payloads = [p for _, p, _ in sub.messages] + [json.dumps(b) for b in endpoint.bodies]
    _no_secret_anywhere([*payloads, proc.stdout, proc.stderr, broker.log()], out)


def test_broker_killed_mid_run_processing_completes_and_the_drop_is_counted(tmp_path, broker, endpoint, sub):
    proc, out, killed_at = live_run(tmp_path, broker, endpoint, sub, kill_broker=True)
    ended = time.monotonic()
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["stats"]["frames"] == FRAMES
    kinds = [json.loads(x)["event"] for x in (out / "events.jsonl").read_text().splitlines()]
    assert "reconnected" in kinds

    stats = manifest["stats"]["events"]
    track_events = sum(kinds.count(k) for k in ("track_start", "track_update", "track_end"))
    received = len(sub.events())
    assert received < track_events  # the broker went away before the end
    assert stats["mqtt"]["dropped"] >= 1 and stats["mqtt"]["connected"] is False
    assert stats["mqtt"]["sent"] + stats["mqtt"]["dropped"] >= track_events
    assert "not delivered to mqtt" in proc.stderr
    # the webhook was not affected: every event arrived
    assert stats["webhook"]["delivered"] == len(endpoint.bodies) == len(kinds) and stats["webhook"]["dropped"] == 0
    lines = _progress_lines(proc.stderr)
    assert lines[-1]["state"] == "final" and lines[-1]["frames"] == FRAMES
    print(f"broker killed {ended - killed_at:.1f} s before the end; {received} of {track_events} track events "
          f"received, mqtt {stats['mqtt']}, webhook {stats['webhook']}")
    payloads = [p for _, p, _ in sub.messages] + [json.dumps(b) for b in endpoint.bodies]
    _no_secret_anywhere([*payloads, proc.stdout, proc.stderr, broker.log()], out)


def test_progress_json_final_line_for_a_run_shorter_than_the_interval(tmp_path):
    from support.paths import run_cli

    out = tmp_path / "o"
    proc = run_cli("process", str(OFFICE), "--out", str(out), "--models", str(MODELS), "--set", "source.max_frames=3",
                   "--set", "output.gallery=false", "--progress", "json", "--progress-interval", "600", timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = _progress_lines(proc.stderr)
    assert [x["state"] for x in lines] == ["final"], proc.stderr
    (src,) = lines[0]["sources"]
    assert lines[0]["frames"] == src["frames"] == 3 and src["state"] == "complete" and src["eta_s"] == 0.0
    assert (lines[0]["outcome"], lines[0]["exit_code"], lines[0]["schema"]) == ("complete", 0, 1)
    assert proc.stdout.strip() == "" or "{" not in proc.stdout  # JSON goes to stderr only
