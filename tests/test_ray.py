"""`process --engine ray` on real Ray processes: a local Ray started for the run, two Ray nodes on this
machine, a worker SIGKILLed mid-recording, a bad file among good ones, a re-run that skips what is done.

Clips are 50 frames cut from the office recording (re-encoded with PyAV), so each job takes seconds.
Skipped, saying why, when Ray is not installed (`pip install 'enhance-faces[ray]'`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pipeline.lab.ray_bench import cut
from support.jobs import JSON, progress_lines
from support.paths import MODELS, ROOT, VIDEO, needs_shared, report_runs, run_cli

pytestmark = pytest.mark.slow  # end-to-end runs of real video and servers: the full suite, not the fast lane

OFFICE = VIDEO / "office_fisheye_cctv.mp4"
CLIPS = {"c0": 0, "c200": 200, "c400": 400}  # name → first frame in the office recording
FRAMES = 50
FAST = ["--models", str(MODELS), "--quiet", "--set", "enhance.policy=best_k"]
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install 'enhance-faces[ray]'): Ray engine untested")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    if not OFFICE.exists():
        pytest.skip(f"needs {OFFICE}")
    folder = tmp_path_factory.mktemp("clips")
    for name, start in CLIPS.items():
        cut(OFFICE, folder / f"{name}.mp4", start, FRAMES)
    return folder


@pytest.fixture(scope="module")
def local_run(clips, tmp_path_factory) -> Path:
    """The same clips through the local engine: what every Ray run must reproduce."""
    out = tmp_path_factory.mktemp("local")
    proc = run_cli("process", str(clips), "--out", str(out), *FAST)
    assert proc.returncode == 0, proc.stderr
    return out


def tracks(run: Path) -> dict[str, list]:
    """Each track's observations (frame, box, entry, files) as track.json has them."""
    return {p.parent.name: [(o["frame"], o["box"], o.get("entry"), sorted(o.get("files", {}).values()))
                            for o in json.loads(p.read_text())["observations"]]
            for p in sorted((run / "tracks").glob("*/track.json"))}


def assert_same_run(a: Path, b: Path) -> None:
    """Same tracks, same tile files, same pixels (originals and enhanced), the whole video."""
    assert tracks(a) == tracks(b)
    tiles_a = sorted(p.relative_to(a).as_posix() for p in (a / "tracks").rglob("*.png"))
    assert tiles_a == sorted(p.relative_to(b).as_posix() for p in (b / "tracks").rglob("*.png"))
    for rel in tiles_a:
        assert np.array_equal(cv2.imread(str(a / rel)), cv2.imread(str(b / rel))), rel
    manifest = json.loads((b / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["stats"]["frames"] == FRAMES
    assert len((b / "faces.csv").read_text().strip().splitlines()) - 1 == manifest["stats"]["faces"]
    with av.open(str(b / "annotated.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == FRAMES


def job(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_without_ray_the_ray_engine_is_one_line_saying_how_to_install(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from pipeline.cli import main; "  # as if not installed
            f"sys.exit(main(['process', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}, '--engine', 'ray']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "pip install 'enhance-faces[ray]'" in proc.stderr, proc.stderr


@needs_ray
def test_a_dvr_export_is_one_recording_per_camera(tmp_path, monkeypatch):
    """The driver plans the channels of a multi-camera file as separate recordings, each naming its stream
    by an absolute path (every node reads the same file), each with its own folder."""
    from pipeline.core.config import Config
    from pipeline.distributed.job import plan
    from support.media import make_channels, pattern

    make_channels(tmp_path / "dvr.mp4", [[pattern(i) for i in range(3)], [pattern(i, (96, 64)) for i in range(3)]])
    monkeypatch.chdir(tmp_path)
    planned = plan(["dvr.mp4"], Config())
    assert [(r.spec, r.name, r.folder, live, why) for r, live, why in planned] == [
        (f"{tmp_path}/dvr.mp4:v:0", "dvr.mp4:v:0", "dvr_v0", False, None),
        (f"{tmp_path}/dvr.mp4:v:1", "dvr.mp4:v:1", "dvr_v1", False, None)]


@needs_ray
@needs_shared
def test_local_ray_matches_the_local_engine_reports_a_bad_file_and_skips_on_rerun(clips, local_run, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in clips.iterdir():
        os.symlink(p, folder / p.name)
    (folder / "broken.mp4").write_bytes(os.urandom(4000))  # a bad file among good ones
    out = tmp_path / "o"
    proc = run_cli("process", str(folder), "--out", str(out), "--engine", "ray", *FAST, timeout=900)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # some failed; the others carried on
    m = job(out)
    assert m["kind"] == "job" and m["status"] == "incomplete" and m["cluster"]["address"] == "local"
    assert [n["object_store_mib"] for n in m["cluster"]["nodes"]] == [256]  # fits a small /dev/shm
    assert m["recordings"] == {"total": 4, "complete": 3, "skipped": 0, "failed": 1, "interrupted": 0}
    runs = {r["name"]: r for r in m["runs"]}
    assert "broken.mp4" in runs["broken"]["reason"] and "\n" not in runs["broken"]["reason"]
    assert "failed: broken.mp4: " in proc.stderr and "Traceback" not in proc.stderr
    for name in CLIPS:
        assert runs[name]["status"] == "complete" and runs[name]["node"]["attempt"] == 1
        assert_same_run(local_run / name, out / name)
    assert m["generator"]["faces"] == sum(runs[n]["enhanced"] for n in CLIPS) and m["generator"]["mean_batch"] >= 1
    assert sorted(r["source"] for r in report_runs(out / "report.html")) == sorted(
        str(folder / f"{n}.mp4") for n in CLIPS)  # one report over every recording
    assert json.loads((out / "people.json").read_text())["people"]
    assert not (out / ".partial").exists()

    before = {n: (out / n / "manifest.json").stat().st_mtime_ns for n in CLIPS}
    loud = [a for a in FAST if a != "--quiet"]  # --quiet would win over --progress
    again = run_cli("process", str(folder), "--out", str(out), "--engine", "ray", *loud, "--progress", "json",
                    timeout=900)
    assert again.returncode == 1, again.stderr
    final = progress_lines(again.stderr)[-1]  # the driver's JSON progress, in the local engine's schema
    assert (final["engine"], final["outcome"], final["exit_code"]) == ("ray", "incomplete", 1), final
    assert sorted(s["state"] for s in final["sources"]) == ["failed", "skipped", "skipped", "skipped"], final
    runs = {r["name"]: r for r in job(out)["runs"]}
    assert [runs[n]["status"] for n in CLIPS] == ["skipped"] * 3 and runs["broken"]["status"] == "failed"
    assert before == {n: (out / n / "manifest.json").stat().st_mtime_ns for n in CLIPS}  # not touched


@needs_ray
@needs_shared
def test_ray_and_local_agree_on_a_bad_file_and_rerun_by_run_identity(tmp_path):
    """The acceptance of docs/jobs.md on Ray, beside the local engine on the same folder."""
    from support.jobs import FAST as QUICK
    from support.jobs import clips

    folder = clips(tmp_path / "in", ["good.mp4", "other.mp4"])
    (folder / "bad.mp4").write_bytes(b"")
    reason = f"empty file (0 bytes): {folder / 'bad.mp4'}"
    local = run_cli("process", str(folder), "--out", str(tmp_path / "local"), *QUICK, *JSON, timeout=900)
    out = tmp_path / "o"
    ray_run = run_cli("process", str(folder), "--out", str(out), "--engine", "ray", *QUICK, *JSON, timeout=900)
    for proc in (local, ray_run):  # the same outcome, exit code and reason from both engines
        assert proc.returncode == 1, proc.stderr
        assert f"failed: bad.mp4: {reason}" in proc.stderr and "Traceback" not in proc.stderr
        lines = progress_lines(proc.stderr)
        assert [(x["source"], x["error"]) for x in lines if x["state"] == "error"] == [("bad.mp4", reason)]
        assert {s["source"]: s["state"] for s in lines[-1]["sources"]} == \
            {"bad.mp4": "failed", "good.mp4": "complete", "other.mp4": "complete"}
    for engine_out in (tmp_path / "local", out):
        runs = {r["name"]: r for r in job(engine_out)["runs"]}
        assert (runs["bad"]["status"], runs["bad"]["reason"]) == ("failed", reason)
        assert runs["good"]["status"] == runs["other"]["status"] == "complete"

    changed = ["--set", "detect.model=det_2.5g.onnx"]
    refused = run_cli("process", str(folder), "--out", str(out), "--engine", "ray", *QUICK, *changed, *JSON,
                      timeout=900)
    assert refused.returncode == 74, refused.stderr
    plain = [x for x in refused.stderr.splitlines() if not x.startswith("{")]
    assert len(plain) == 1 and "detect.model" in plain[0], refused.stderr
    assert progress_lines(refused.stderr)[-1]["exit_code"] == 74

    redo = run_cli("process", str(folder), "--out", str(out), "--engine", "ray", *QUICK, *changed, "--overwrite",
                   *JSON, timeout=900)
    assert redo.returncode == 1, redo.stderr  # bad.mp4 still fails
    m = job(out)
    assert m["settings"]["detect"]["model"] == "det_2.5g.onnx" and m["engine"] == "ray"
    for name in ("good", "other"):
        run = {r["name"]: r for r in m["runs"]}[name]
        own = json.loads((out / name / "manifest.json").read_text())
        assert run["status"] == "complete" and own["settings"] == m["settings"] and own["identity"] == run["identity"]

    (folder / "bad.mp4").unlink()
    again = run_cli("process", str(folder), "--out", str(out), "--engine", "ray", *QUICK, *changed, *JSON,
                    timeout=900)
    assert again.returncode == 0, again.stderr
    (final,) = progress_lines(again.stderr)  # everything skipped: Ray not even started, still a final line
    assert (final["outcome"], final["exit_code"]) == ("complete", 0)
    assert [s["state"] for s in final["sources"]] == ["skipped", "skipped"]
    assert "ray: not started" in again.stdout


def kill_mid_recording(out: Path, timeout: float = 600) -> tuple[int, str]:
    """SIGKILL the Ray worker running a recording once it has written faces; returns (pid, recording)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in (out / ".partial").glob("*/attempts.jsonl"):
            try:
                pid = json.loads(log.read_text().splitlines()[-1])["pid"]
                rows = sum(len(f.read_text().splitlines()) for f in log.parent.glob("*/faces.csv"))
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, ValueError, IndexError, KeyError):
                continue  # being written, or already gone
            if rows > 1 and title.startswith(b"ray::run_recording"):  # the worker of our own task, mid-way
                os.kill(pid, signal.SIGKILL)
                return pid, log.parent.name
        time.sleep(0.1)
    raise AssertionError("no recording reached its first faces in time")


@needs_ray
@needs_shared
def test_two_nodes_one_job_and_a_killed_worker_is_retried(clips, local_run, tmp_path):
    from pipeline.distributed.local_cluster import LocalCluster

    out = tmp_path / "o"
    with LocalCluster([{"cpus": 1}, {"cpus": 1, "resources": {"second_node": 1}}]) as cluster:
        driver = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "process", str(clips), "--out", str(out), "--engine", "ray",
             "--ray-address", cluster.address, *FAST],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=cluster.env)
        try:
            killed, name = kill_mid_recording(out)
            stdout, stderr = driver.communicate(timeout=900)
        finally:
            driver.kill()
    assert driver.returncode == 0, stdout + stderr
    m = job(out)
    nodes = {n["id"] for n in m["cluster"]["nodes"]}
    assert len(nodes) == 2 and any(n["resources"].get("second_node") for n in m["cluster"]["nodes"])
    runs = {r["name"]: r for r in m["runs"]}
    assert {r["node"]["id"] for r in runs.values()} == nodes  # recordings landed on both nodes
    assert runs[name]["node"]["attempt"] == 2 and runs[name]["node"]["pid"] != killed  # retried, from scratch
    assert all(runs[n]["node"]["attempt"] == 1 for n in CLIPS if n != name)
    for n in CLIPS:  # one output tree, every recording whole, nothing twice
        assert runs[n]["status"] == "complete"
        assert json.loads((out / n / "manifest.json").read_text())["node"] == runs[n]["node"]
        assert_same_run(local_run / n, out / n)
    assert sorted(p.name for p in out.iterdir()) == sorted([*CLIPS, "manifest.json", "report.html", "people.json",
                                                            "gallery.png"])


@needs_ray
@needs_shared
def test_a_camera_actor_killed_mid_stream_is_restarted_into_its_own_folder(tmp_path):
    from support import rtsp

    ok, why = rtsp.available()
    if not ok:
        pytest.skip(f"GStreamer RTSP server unavailable: {why}")
    out = tmp_path / "o"
    cfg = tmp_path / "cams.yaml"
    with rtsp.RtspServer({"cam": OFFICE}, loop=True) as server:
        cfg.write_text(f"sources:\n  - {{name: lobby, uri: '{server.url('cam')}'}}\nsource:\n  max_frames: 40\n")
        driver = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "process", "--config", str(cfg), "--out", str(out), "--engine",
             "ray", "--set", "detect.stride=2", *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT)
        try:
            deadline = time.monotonic() + 600
            while not (out / "lobby" / "events.jsonl").exists():  # the camera's session has begun
                assert time.monotonic() < deadline and driver.poll() is None, "the camera never started"
                time.sleep(0.1)
            pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                    and _title(p).startswith(b"ray::CameraActor") and _ancestor(int(p.name), driver.pid)]
            assert len(pids) == 1, pids
            os.kill(pids[0], signal.SIGKILL)
            stdout, stderr = driver.communicate(timeout=600)
        finally:
            driver.kill()
    assert driver.returncode == 0, stdout + stderr
    (run,) = job(out)["runs"]
    assert run["status"] == "complete" and run["folders"] == ["lobby", "lobby.r2"] and run["frames"] == 40
    restarted = json.loads((out / "lobby.r2" / "manifest.json").read_text())
    assert restarted["status"] == "complete" and restarted["stats"]["frames"] == 40
    events = [json.loads(line) for line in (out / "lobby.r2" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "run_end"


def _title(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def _ancestor(pid: int, ancestor: int) -> bool:
    """Whether `ancestor` started `pid` (directly or not): the camera actor of our own job, no other."""
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False
