"""Bookkeeping that scales: a live feed's report refresh with 100+ finished tracks runs beside the frame
loop and only reads what is new; the gallery is capped; with `enhance.policy=all` the tiles of a track
go onto a few sheets instead of six files per face. Real models, real photos, a real RTSP camera."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.core.config import AlignConfig, load_config
from pipeline.core.types import Face, Track
from pipeline.io.sinks import TrackWriter
from pipeline.report.sheet import MAX_ROWS
from pipeline.stages.align import Aligner
from support import rtsp
from support.paths import IMAGES, MODELS, VIDEO, needs_shared, require

OFFICE = VIDEO / "office_fisheye_cctv.mp4"
PHOTOS = ["obama_1", "biden_1", "kit_1", "rose_1", "alex_1", "obama_2", "biden_2", "kit_2"]
pytestmark = [pytest.mark.slow, needs_shared]


@pytest.fixture(scope="module")
def stages():
    from pipeline.run.build import Stages

    require(MODELS / "det_500m.onnx", MODELS / "mobilefacenet_128d.onnx")
    s = Stages(load_config(None, ["detect.stride=2"]), MODELS, progress=False)
    yield s
    s.close()


@pytest.fixture(scope="module")
def faces(stages) -> list[Face]:
    """The largest face of each photo, aligned and enhanced by the real generator."""
    out = []
    for name in PHOTOS:
        path = next(IMAGES.glob(name + ".*"), None)
        if path is None:
            pytest.skip(f"photo missing: {name}")
        img = cv2.imread(str(path))
        face = max(stages.detector(img), key=lambda f: f.size)
        Aligner(AlignConfig())(img, face)
        out.append(face)
    stages.enhancer(out)
    return out


def observation(f: Face, track: int, frame: int, source: str = "cam") -> Face:
    return dataclasses.replace(f, track_id=track, frame_index=frame, time=frame / 25.0, source=source)


def write_tracks(out: Path, faces: list[Face], ids: range, cfg=None) -> None:
    """Finished tracks on disk as a live feed's would be, one observation each, by the real TrackWriter."""
    cfg = cfg or load_config()
    for i in ids:
        g = observation(faces[i % len(faces)], i, i)
        TrackWriter(out, cfg.output, run_info={"inputs": ["cam"], "settings": cfg.to_dict()}).write(
            Track(i, "cam", faces=[g], candidates=[g]))


def refresh_while_stepping(session, frames) -> tuple[float, int, float]:
    """Ask for a report refresh and keep processing frames until it is done: (refresh s, frames, longest pause s)."""
    before, done = session.timings.seconds.get("refresh", 0.0), session.publisher.reports
    session.publisher.request(report=True)
    steps, pauses, last = 0, [], time.perf_counter()
    while session.publisher.reports == done:
        session.step(next(frames))
        now = time.perf_counter()
        pauses.append(now - last)
        last, steps = now, steps + 1
    session.publisher.check()
    return session.timings.seconds["refresh"] - before, steps, max(pauses)


@pytest.mark.skipif(not rtsp.available()[0], reason=f"GStreamer RTSP server unavailable: {rtsp.available()[1]}")
def test_live_report_refresh_never_stalls_the_frame_loop(stages, faces, tmp_path):
    from pipeline.io.sources import open_source
    from pipeline.run.session import Session
    from pipeline.run.stop import StopFlag

    out = tmp_path / "live"
    write_tracks(out, faces, range(1001, 1131))  # 130 tracks that ended earlier in the feed
    with rtsp.RtspServer({"cam": OFFICE}, loop=True) as server, \
            open_source(server.url("cam"), stages.cfg.source) as src:
        session = Session(stages, src, out, StopFlag())
        frames = session.frames()
        for _ in range(5):
            session.step(next(frames))
        first_s, first_steps, first_pause = refresh_while_stepping(session, frames)
        write_tracks(out, faces, range(1131, 1132))  # one more track ends
        second_s, _, _ = refresh_while_stepping(session, frames)
        result = session.finish("complete")
    assert first_steps >= 3, (first_s, first_steps)  # frames kept flowing during the refresh ...
    assert first_pause < first_s / 2, (first_pause, first_s)  # ... and none waited for it
    assert second_s < first_s / 2, (second_s, first_s)  # the next refresh reads only the new track
    assert result.status == "complete"
    html = (out / "report.html").read_text()
    assert all(f"#{i}" in html for i in (1001, 1066, 1131))  # the report holds every track
    h = Image.open(out / "gallery.png").size[1]
    assert h < 56 + (MAX_ROWS + 1) * 170 + 60 * (MAX_ROWS + 2)  # the gallery is capped, not 131 rows
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and "refresh" in manifest["timings"]


def test_policy_all_tiles_go_on_sheets(faces, tmp_path):
    cfg = load_config(None, ["enhance.policy=all"])
    assert cfg.tile_sheets() and not load_config().tile_sheets()
    assert not load_config(None, ["enhance.policy=all", "output.unmarked_tiles=true"]).tile_sheets()
    n = 300  # more than one sheet's worth
    obs = [observation(faces[i % len(faces)], 7, i) for i in range(n)]
    for i, f in enumerate(obs):
        f.quality = 0.5 + (i % 50) / 100  # distinct enough to rank
    writer = TrackWriter(tmp_path, cfg.output, run_info={"inputs": ["cam"], "settings": cfg.to_dict()}, sheets=True,
                         dedupe=cfg.gallery.dedupe)
    summary = writer.write(Track(7, "cam", faces=obs, candidates=obs))
    tdir = tmp_path / "tracks" / "7"
    files = sorted(p.name for p in tdir.iterdir())
    assert len(files) == len(summary["files"]) <= 2 * 3 + 3 + 3 * 3  # 2 sheets × 3 kinds, index, best, track, singles: not 6 × 300
    assert {"tiles_original_01.png", "tiles_original_02.png", "tiles_lr_02.png", "tiles_enhanced_02.png",
            "tiles.json", "track.json", "best.png"} <= set(files)
    singles = {n for n in files if n.startswith("f") and n.endswith("_enhanced.png")}
    assert 1 <= len(singles) <= cfg.output.gallery_per_track  # what the gallery shows, no sidecars
    assert not [n for n in files if n.startswith("f") and n.endswith(".json")]
    index = json.loads((tdir / "tiles.json").read_text())
    assert len(index["observations"]) == n and index["settings"]["enhance"]["policy"] == "all"
    sheets: dict[str, np.ndarray] = {}
    for row in index["observations"][::37]:  # every tile is where the index says, pixel for pixel
        f = obs[row["frame"]]
        for kind, want in (("original", f.crop), ("lr", f.lr)):
            place = row["tiles"][kind]
            sheet = sheets.setdefault(place["file"], cv2.imread(str(tdir / place["file"])))
            x, y, w, h = place["box"]
            assert np.array_equal(sheet[y : y + h, x : x + w], want)
        assert row["records"]["enhanced"]["ai_generated"] and "settings" not in row["records"]["enhanced"]
    enhanced = Image.open(tdir / "tiles_enhanced_01.png")
    assert enhanced.text["AI-Generated"] == "true" and "tiles.json" in enhanced.text["Description"]
    track = json.loads((tdir / "track.json").read_text())
    assert track["n_enhanced"] == n and sum(bool(o["files"]) for o in track["observations"]) == len(singles)


def test_unmarked_tiles_keep_one_png_per_tile(faces, tmp_path):
    """eval-video reads fNNNNNN_lr.png and fNNNNNN_enhanced_unmarked.png of every observation."""
    cfg = load_config(None, ["enhance.policy=all", "output.unmarked_tiles=true"])
    obs = [observation(faces[i % len(faces)], 2, i) for i in range(20)]
    TrackWriter(tmp_path, cfg.output, sheets=cfg.tile_sheets()).write(Track(2, "cam", faces=obs, candidates=obs))
    tdir = tmp_path / "tracks" / "2"
    assert not list(tdir.glob("tiles_*"))
    for o in json.loads((tdir / "track.json").read_text())["observations"]:
        assert (tdir / o["files"]["lr"]).is_file() and (tdir / o["files"]["enhanced_unmarked"]).is_file()
        assert o["files"]["lr"] == f"f{o['frame']:06d}_lr.png"


def _nice(tid: int) -> int:
    """A thread's niceness as the kernel schedules it (field 19 of /proc/self/task/TID/stat)."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[16])


@pytest.mark.skipif(not rtsp.available()[0], reason=f"GStreamer RTSP server unavailable: {rtsp.available()[1]}")
def test_feeds_refresh_their_reports_one_at_a_time_below_the_frames_priority(stages, faces, tmp_path):
    """Four cameras of one run asked for their reports at the same moment (as their 30 s refreshes once
    lined up): the reports are written one after another, never together; one embedder serves them all; the
    helper threads run at a lower CPU priority than the frame loop."""
    from pipeline.io.sources import open_source
    from pipeline.run.session import Session
    from pipeline.run.stop import StopFlag

    mounts = {f"cam{i}": OFFICE for i in range(4)}
    spans: list[tuple[float, float]] = []
    with rtsp.RtspServer(mounts, loop=True) as server:
        sources = [open_source(server.url(m), stages.cfg.source) for m in mounts]
        sessions = []
        for i, src in enumerate(sources):
            out = tmp_path / f"cam{i}"
            write_tracks(out, faces, range(100 * i + 1, 100 * i + 9))
            session = Session(stages, src, out, StopFlag())
            report = session._refresh_report

            def timed(report=report) -> None:
                t = time.perf_counter()
                report()
                spans.append((t, time.perf_counter()))

            session.publisher._report = timed
            sessions.append(session)
        streams = [s.frames() for s in sessions]
        for s, frames in zip(sessions, streams):
            s.step(next(frames))
        for s in sessions:
            s.publisher.request(report=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and any(s.publisher.reports == 0 for s in sessions):
            for s, frames in zip(sessions, streams):
                s.step(next(frames))  # the frame loops keep going meanwhile
        niceness = [_nice(s.publisher._thread.native_id) for s in sessions]
        results = [s.finish("complete") for s in sessions]
        for src in sources:
            src.close()
    assert all(s.publisher.reports == 1 for s in sessions) and len(spans) == 4
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans  # one at a time
    embedders = {id(s._report_cache["embedder"]) for s in sessions}
    assert len(embedders) == 1  # loaded once for all four
    main = _nice(threading.get_native_id())
    assert all(n > main for n in niceness), (niceness, main)
    assert all(r.status == "complete" for r in results)
    for i in range(4):
        html = (tmp_path / f"cam{i}" / "report.html").read_text()
        assert f"#{100 * i + 1}" in html
