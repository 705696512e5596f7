"""Nothing lost, nothing mixed: runs killed outright, a full disk, two runs into one folder, an old run in
the way, and signals at awkward moments — on real files, real signals, a real tmpfs, decoded with PyAV."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from support.paths import IMAGES, MODELS, ROOT, VIDEO, needs_shared, run_cli

OFFICE = VIDEO / "office_fisheye_cctv.mp4"
pytestmark = [pytest.mark.slow, needs_shared]
QUICK = ["--set", "enhance.policy=none", "--set", "detect.stride=3", "--quiet"]


def start(out: Path, *args: str, source: Path = OFFICE) -> subprocess.Popen:
    """`enhance-faces process` in the background, as a user starts it."""
    cmd = [sys.executable, str(ROOT / "run.py"), "process", str(source), "--out", str(out), "--models", str(MODELS),
           *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def wait_for(path: Path, size: int = 1, timeout: float = 300) -> None:
    """Until `path` holds at least `size` bytes: the run is past start-up and writing."""
    deadline = time.time() + timeout
    while time.time() < deadline and not (path.exists() and path.stat().st_size >= size):
        time.sleep(0.1)
    assert path.exists() and path.stat().st_size >= size, f"{path} never reached {size} bytes"


def decodable(path: Path) -> int:
    """Frames PyAV decodes from a video (the end of a cut file counts as its end)."""
    n = 0
    with av.open(str(path)) as c:
        try:
            for _ in c.decode(video=0):
                n += 1
        except av.error.FFmpegError:
            pass
    return n


def on_disk(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*") if p.is_file()
            and p.name != "manifest.json"}


def listed(manifest: dict) -> dict[str, int]:
    return {f["path"]: f["bytes"] for f in manifest["files"]}


def running_frames(out: Path) -> int:
    """Frames a running run's manifest says it has processed (0 before its first rewrite)."""
    try:
        return json.loads((out / "manifest.json").read_text())["stats"]["frames"]
    except (OSError, ValueError, KeyError):
        return 0


def one_line(proc: subprocess.CompletedProcess | subprocess.Popen, stderr: str | None = None) -> str:
    err = (proc.stderr if stderr is None else stderr).strip()
    assert proc.returncode != 0 and err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------ 1: kill -9


def test_sigkill_leaves_playable_video_and_a_manifest_then_recover(tmp_path):
    out = tmp_path / "o"
    proc = start(out, "--quiet")
    deadline = time.time() + 300
    while time.time() < deadline and running_frames(out) < 60:  # a manifest rewritten mid-run, video written
        time.sleep(0.2)
    time.sleep(0.5)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    manifest = json.loads((out / "manifest.json").read_text())  # whole and parseable at any moment
    assert manifest["status"] == "running" and manifest["stats"]["frames"] >= 60
    disk = on_disk(out)
    for path, size in listed(manifest).items():  # everything it lists is there, complete or still growing
        assert path in disk and disk[path] >= size, path
    frames = decodable(out / "annotated.mp4")
    assert frames > 0  # up to its last complete fragment

    gallery = run_cli("gallery", str(out), "--models", str(MODELS), timeout=300)
    assert gallery.returncode == 0, gallery.stderr
    assert "recovered a crashed run" in gallery.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "crashed" and "killed" in manifest["note"]
    assert listed(manifest) == on_disk(out)  # exactly what is on disk now, report included
    assert {"report.html", "gallery.png", "people.json"} <= set(listed(manifest))
    assert 0 < manifest["stats"]["video_frames"] == decodable(out / "annotated.mp4") <= frames  # whole fragments
    assert not (out / ".enhance-reserve").exists()


# ------------------------------------------------------------------------------ 2: disk full


@pytest.fixture
def small_disk(tmp_path):
    """A real 600 KB tmpfs (skipped where mounting is not allowed)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_is_one_line_and_leaves_a_listed_playable_run(small_disk):
    out = small_disk / "o"
    proc = run_cli("process", str(OFFICE), "--out", str(out), "--models", str(MODELS), *QUICK, timeout=300)
    err = one_line(proc)
    assert "No space left on device" in err and str(out) in err and proc.returncode == 74
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "No space left on device" in manifest["error"]
    # the write failed, not the input: nothing blames the recording (it is whole)
    assert not any("ends early" in e or "damaged" in e for e in manifest["stats"]["decode_errors"])
    assert manifest["stats"]["skipped_frames"] == 0
    assert listed(manifest) == on_disk(out)  # what was written is listed, sizes exact
    assert 0 < decodable(out / "annotated.mp4") <= manifest["stats"]["frames"]


# ------------------------------------------------------------------------------ 3, 4: one run per folder


def test_one_run_per_folder_and_no_mixing(tmp_path):
    out = tmp_path / "o"
    first = start(out, "--set", "source.max_frames=400", *QUICK)
    wait_for(out / "manifest.json")
    first.send_signal(signal.SIGSTOP)  # held mid-run, so it cannot finish before the second one looks
    try:
        second = run_cli("process", str(IMAGES), "--out", str(out), "--models", str(MODELS), "--quiet")
    finally:
        first.send_signal(signal.SIGCONT)
    assert "in use by another run" in one_line(second)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["inputs"] == [str(OFFICE)]
    assert listed(manifest) == on_disk(out)  # the refused run wrote nothing here
    rows = list(csv.DictReader((out / "faces.csv").open(newline="")))
    assert rows and all(r["source"] == "office_fisheye_cctv.mp4" for r in rows) and len(rows) == manifest["stats"]["faces"]

    again = run_cli("process", str(IMAGES), "--out", str(out), "--models", str(MODELS), "--quiet")
    assert "already holds a run" in one_line(again) and "--overwrite" in again.stderr
    assert json.loads((out / "manifest.json").read_text()) == manifest  # untouched

    (out / "notes.txt").write_text("mine")  # not a run's file: kept
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(next(IMAGES.glob("obama_1.*")), photos / "1.jpg")
    cv2.imwrite(str(photos / "2.png"), np.full((6, 6, 3), 128, np.uint8))  # smaller than any face: skipped, counted
    replaced = run_cli("process", str(photos), "--out", str(out), "--models", str(MODELS), "--overwrite", *QUICK)
    assert replaced.returncode == 0, replaced.stderr
    new = json.loads((out / "manifest.json").read_text())
    assert new["inputs"] == [str(photos)] and new["stats"]["frames"] == 2 and new["stats"]["small_frames"] == 1
    assert new["status"] == "complete_with_errors"
    assert listed(new) == on_disk(out) and (out / "notes.txt").read_text() == "mine"
    assert "office" not in (out / "faces.csv").read_text() + (out / "report.html").read_text()
    assert all(t["source"] == "photos" for t in new["tracks"])


# ------------------------------------------------------------------------------ 8: signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_half_a_second_after_start_is_a_message(tmp_path, sig):
    """The handlers are in before the package loads: even while Python imports, a message and 128 + N."""
    out = tmp_path / "o"
    proc = start(out, "--quiet")
    time.sleep(0.5)  # importing: nothing processed, nothing written yet
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig and f"interrupted by {name}" in one_line(proc, stderr)
    assert not out.exists()  # a start that ended leaves no (empty) output folder


@pytest.mark.parametrize("setting", ["enhance.weights", "detect.model"])
def test_failed_start_up_leaves_no_output_folder(tmp_path, setting):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 1000, dtype=np.uint8).tobytes())
    out = tmp_path / "new" / "o"
    proc = run_cli("process", str(IMAGES), "--out", str(out), "--models", str(MODELS), "--quiet",
                   "--set", f"{setting}={bad}")
    assert "cannot load" in one_line(proc) and str(bad) in proc.stderr
    assert not (tmp_path / "new").exists()  # both folders it would have made are gone again
    mine = tmp_path / "mine"  # a folder the user made is left as it was
    mine.mkdir()
    proc = run_cli("process", str(IMAGES), "--out", str(mine), "--models", str(MODELS), "--quiet",
                   "--set", f"{setting}={bad}")
    assert "cannot load" in one_line(proc) and mine.is_dir() and not any(mine.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1])
def test_hangup_and_other_signals_finish_the_run(tmp_path, sig):
    """A dropped SSH session (SIGHUP), Ctrl-\\ (SIGQUIT) or SIGUSR1 stop a run as SIGTERM does: a message,
    every open track written, the video finalized, the manifest "interrupted"; `gallery` then has them all."""
    out = tmp_path / "o"
    proc = start(out, "--quiet")
    wait_for(out / "faces.csv", 2000)  # faces seen: tracks are open
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=300)
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig, stderr
    assert f"stopping on {name}" in stderr and "Traceback" not in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["stats"]["stopped_by"] == name
    assert listed(manifest) == on_disk(out)
    assert 0 < decodable(out / "annotated.mp4") <= manifest["stats"]["frames"]
    ids = {t["id"] for t in manifest["tracks"]}
    on_disk_tracks = {int(p.name) for p in (out / "tracks").iterdir() if p.is_dir()}
    assert ids and ids == on_disk_tracks
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    ends = [e for e in events if e["event"] in ("end", "track_end")]
    assert {e["track"] for e in ends} == ids and any(e["reason"] == "stopped" for e in ends)
    if sig == signal.SIGHUP:
        gallery = run_cli("gallery", str(out), "--models", str(MODELS), timeout=300)
        assert gallery.returncode == 0, gallery.stderr
        again = json.loads((out / "manifest.json").read_text())
        assert {t["id"] for t in again["tracks"]} == ids  # every track, the ones open at the signal too
        people = json.loads((out / "people.json").read_text())
        assert sorted(t["track"] for p in people["people"] for t in p["tracks"]) == sorted(ids)


def test_second_ctrl_c_still_leaves_a_manifest(tmp_path):
    out = tmp_path / "o"
    proc = start(out, "--quiet")
    wait_for(out / "faces.csv", 2000)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)  # the first stop finishes a short run within ~0.3 s here; then the process only tears down
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr  # never -2: a Ctrl-C during Python's teardown is ignored
    assert "Traceback" not in stderr
    if "second SIGINT" in stderr:  # aborted while finishing: the message says what was not written
        assert "run.py gallery" in stderr
    else:  # the first stop had already finished the run: everything was written
        assert (out / "report.html").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["stats"]["frames"] > 0
    assert listed(manifest) == on_disk(out)
    assert decodable(out / "annotated.mp4") > 0


def test_cut_to_complete_fragment(tmp_path):
    """An MP4 cut mid-fragment (a write stopped by a crash) is trimmed to its last whole fragment."""
    from pipeline.core.config import OutputConfig
    from pipeline.io.sinks import VideoWriter
    from pipeline.run.recover import cut_to_complete

    path = tmp_path / "v.mp4"
    w = VideoWriter(path, 160, 120, 25.0, OutputConfig())
    rng = np.random.default_rng(0)
    for i in range(100):  # four 1 s fragments of noise (large frames, so a cut lands mid-fragment)
        w.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), i / 25)
    w.close()
    whole = decodable(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    size = cut_to_complete(path)
    assert 0 < size < len(data) * 0.6
    assert 0 < decodable(path) < whole
    with av.open(str(path)) as c:  # no error at the end: it ends on a whole fragment
        assert len(list(c.decode(video=0))) == decodable(path)
    assert os.path.getsize(path) == size
