"""Output stage: files are really written, then decoded back and checked."""

from __future__ import annotations

import csv
import dataclasses
import json
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.core.config import OutputConfig
from pipeline.core.draw import PALETTE
from pipeline.core.types import Face
from pipeline.io.sinks import Annotator, Manifest, TrackWriter, VideoWriter
from pipeline.report.sheet import MAX_ROWS, Row, Section, Tile, draw_sheet, select
from support.tracks import cctv_face, load_photo, make_track

OUTPUT = OutputConfig()  # the defaults: 96 px insets, tiles on, crf 23, veryfast
@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_photo()


def int_box(face: Face) -> tuple[int, int, int, int]:
    return tuple(int(round(float(v))) for v in face.box)  # type: ignore[return-value]


def decode(path: Path) -> tuple[list[av.VideoFrame], av.container.InputContainer]:
    c = av.open(str(path))
    frames = list(c.decode(video=0))
    return frames, c


# ---------------------------------------------------------------------------- VideoWriter


def test_video_vfr_odd_size_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.01, 0.15, 40))
    times[10] = times[9]  # collision: must be kept, bumped by one tick
    times = [float(t) for t in times - times[0]]
    path = tmp_path / "out.mp4"
    w = VideoWriter(path, 641, 361, 25.0, OUTPUT)
    for i, t in enumerate(times):
        w.write(np.full((361, 641, 3), 5 + i * 6, np.uint8), t)
    assert w.frames_written == 40
    w.close()
    w.close()  # idempotent
    w.write(np.zeros((361, 641, 3), np.uint8), 99.0)  # after close: ignored, not a crash
    assert w.frames_written == 40

    frames, c = decode(path)
    assert len(frames) == 40
    assert frames[0].width in (640, 642) and frames[0].height in (360, 362)
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    got = [float(f.time) for f in frames]
    assert np.allclose(got, times, atol=2e-4)  # VFR timing honoured, the collision only nudged
    # order and content: each frame's grey level is the one written at that time
    levels = [float(f.to_ndarray(format="bgr24")[100:200, 100:200].mean()) for f in frames]
    assert np.allclose(levels, [5 + i * 6 for i in range(40)], atol=3)
    assert c.duration is not None
    assert abs(c.duration / 1e6 - times[-1]) < 0.1  # ≈ last time (+ one nominal frame)
    c.close()


def test_video_input_time_base_and_offset_start(tmp_path: Path) -> None:
    path = tmp_path / "tb.mp4"
    tb = Fraction(1, 12800)
    times = [3.0 + k * 512 * tb for k in (0, 1, 2, 4, 7)]  # starts at 3 s, gaps of 1 and 2 frames
    w = VideoWriter(path, 320, 240, 25.0, OUTPUT, time_base=tb)
    for i, t in enumerate(times):
        w.write(np.full((240, 320, 3), 40 * i, np.uint8), float(t))
    w.close()
    frames, c = decode(path)
    assert [round(float(f.time), 4) for f in frames] == [round(float(t) - 3.0, 4) for t in times]
    assert w.start_time == pytest.approx(3.0)
    c.close()


def test_video_few_frames_playable_and_close_during_write(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    w = VideoWriter(path, 200, 100, 30.0, OUTPUT)
    for i in range(3):
        w.write(np.full((100, 200, 3), 60 * i, np.uint8), i / 30)
    w.close()
    frames, c = decode(path)
    assert len(frames) == 3
    c.close()

    class Interrupted(VideoWriter):
        """Simulates a signal handler calling close() while a write() is in progress."""

        def _fit(self, image: np.ndarray) -> np.ndarray:
            if self.frames_written == 4:
                self.close()
            return super()._fit(image)

    path2 = tmp_path / "interrupted.mp4"
    w2 = Interrupted(path2, 200, 100, 30.0, OUTPUT)
    for i in range(10):
        w2.write(np.full((100, 200, 3), 20 * i, np.uint8), i / 30)
    assert w2.closed and w2.frames_written == 5  # the interrupted write finished, then closed
    frames, c = decode(path2)
    assert len(frames) == 5
    c.close()


# ---------------------------------------------------------------------------- Annotator


def _find_inset(out: np.ndarray, face: Face, size: int) -> tuple[int, int, float]:
    """Where the (top part of the) resized enhanced face appears in `out`, and how well it matches."""
    tile = cv2.resize(face.enhanced, (size, size), interpolation=cv2.INTER_AREA)
    templ = tile[2 : size // 2, 2 : size - 2]  # clear of the border and the bottom label
    res = cv2.matchTemplate(out, templ, cv2.TM_SQDIFF)
    _, _, (x, y), _ = cv2.minMaxLoc(res)
    err = float(np.abs(out[y : y + templ.shape[0], x : x + templ.shape[1]].astype(int) - templ).mean())
    return x - 2, y - 2, err


def test_annotator_inset_beside_face(photo: np.ndarray) -> None:
    image, face = cctv_face(photo, face_px=40, at=(300, 150))
    before = image.copy()
    ann = Annotator(OUTPUT)
    out = ann(image, [face], {face.track_id: face})
    assert np.array_equal(image, before)  # drawn on a copy
    x1, y1, x2, y2 = int_box(face)
    # the face's own pixels are untouched inside the rectangle line (thickness 2)
    assert np.array_equal(out[y1 + 2 : y2 - 1, x1 + 2 : x2 - 1], image[y1 + 2 : y2 - 1, x1 + 2 : x2 - 1])
    # the rectangle is drawn in the track's colour
    assert tuple(int(v) for v in out[(y1 + y2) // 2, x1]) == PALETTE[face.track_id % len(PALETTE)]
    ix, iy, err = _find_inset(out, face, 96)
    assert err < 2.0  # the enhanced face is there, at full inset size
    inset = (ix, iy, ix + 96, iy + 96)
    assert inset[2] <= x1 or inset[0] >= x2 or inset[3] <= y1 or inset[1] >= y2  # beside, not over the face
    region = out[iy : iy + 96, ix : ix + 96]
    assert np.abs(region.astype(int) - image[iy : iy + 96, ix : ix + 96]).mean() > 10
    # the "AI-enhanced" label: a black strip with white text along the inset's bottom
    strip = region[-12:-2, 2:-2]
    assert (strip.max(axis=2) < 30).mean() > 0.3 and (strip.min(axis=2) > 200).mean() > 0.03


def test_annotator_inset_inside_frame_at_edge(photo: np.ndarray) -> None:
    W, H = 640, 360
    image, face = cctv_face(photo, face_px=40, at=(W - 42, H - 62))  # touching the right/bottom edge
    x1, y1, x2, y2 = int_box(face)
    assert x2 >= W - 3 and y2 >= H - 12
    out = Annotator(OUTPUT)(image, [face], {face.track_id: face})
    assert out.shape == image.shape
    ix, iy, err = _find_inset(out, face, 96)
    assert err < 2.0
    assert 0 <= ix and ix + 96 <= W and 0 <= iy and iy + 96 <= H
    assert ix + 96 <= x1 or iy + 96 <= y1  # left of or above the face
    xa, ya = min(x2 - 1, W - 1), min(y2 - 1, H - 1)
    assert np.array_equal(out[y1 + 2 : ya, x1 + 2 : xa], image[y1 + 2 : ya, x1 + 2 : xa])


def test_annotator_untracked_and_no_inset_without_enhanced(photo: np.ndarray) -> None:
    image, face = cctv_face(photo, face_px=40, at=(300, 150), track_id=-1)
    tracked = dataclasses.replace(face, track_id=5, enhanced=None)
    out = Annotator(OUTPUT)(image, [face], {})
    diff = np.any(out != image, axis=2)
    x1, y1, x2, y2 = int_box(face)
    assert diff.sum() <= 2 * ((x2 - x1) + (y2 - y1)) + 8  # a thin (1 px) grey box, no label, no inset
    out2 = Annotator(OUTPUT)(image, [tracked], {5: tracked})  # a track with nothing enhanced: no inset
    assert np.any(out2 != image, axis=2).sum() < 40 * 40


def test_annotator_is_fast(photo: np.ndarray) -> None:
    import time

    image, face = cctv_face(photo)
    faces = [dataclasses.replace(face, track_id=i, box=face.box + np.float32([i * 60, 0, i * 60, 0]) - 240)
             for i in range(1, 8)]
    ann = Annotator(OUTPUT)
    ann(image, faces, {f.track_id: face for f in faces})
    t = time.perf_counter()
    for _ in range(30):
        ann(image, faces, {f.track_id: face for f in faces})
    assert (time.perf_counter() - t) / 30 < 0.02


# ---------------------------------------------------------------------------- TrackWriter


def test_track_writer_files_and_json(tmp_path: Path, photo: np.ndarray) -> None:
    track = make_track(photo)
    summary = TrackWriter(tmp_path, OUTPUT).write(track)
    tdir = tmp_path / "tracks" / "3"
    for rel in summary["files"]:
        assert (tmp_path / rel).is_file()
    for f in track.enhanced:
        stem = tdir / f"f{f.frame_index:06d}"
        orig = Image.open(f"{stem}_original.png")
        enh = Image.open(f"{stem}_enhanced.png")
        lr = Image.open(f"{stem}_lr.png")
        assert orig.size == (128, 128) and enh.size == (128, 128) and lr.size == (f.entry, f.entry)
        assert enh.text["AI-Generated"] == "true" and enh.text["Software"] == "Enhance"
        assert enh.text["Description"] == "AI-enhanced reconstruction, not a photograph"
        assert enh.text["Frame"] == str(f.frame_index) and enh.text["Source"] == "cam1" and enh.text["Box"]
        assert orig.text["AI-Generated"] == "false"
        # original crop is written losslessly; the enhanced tile carries a visible mark in a corner only
        assert np.array_equal(np.asarray(orig)[..., ::-1], f.crop)
        e = np.asarray(enh)[..., ::-1].astype(int)
        assert np.array_equal(e[:64, :64], f.enhanced[:64, :64])
        assert np.abs(e[-14:, -60:] - f.enhanced[-14:, -60:]).mean() > 20
    best = Image.open(tdir / "best.png")
    assert best.width > best.height and best.text["AI-Generated"] == "true"

    doc = json.loads((tdir / "track.json").read_text())
    assert doc["track_id"] == 3 and doc["source"] == "cam1"
    assert (doc["first_frame"], doc["last_frame"]) == (10, 13)
    assert doc["first_time"] == pytest.approx(0.4) and doc["last_time"] == pytest.approx(0.52)
    obs = doc["observations"]
    assert [o["frame"] for o in obs] == [10, 11, 12, 13]
    assert [o["enhanced"] for o in obs] == [False, True, False, True]
    for o in obs:
        assert len(o["box"]) == 4 and len(o["kps"]) == 5 and o["entry"] in (16, 32, 64)
        for name in o["files"].values():
            assert (tdir / name).is_file()
    assert sorted(obs[1]["files"]) == ["enhanced", "lr", "original"]
    assert summary["n_observations"] == 4 and summary["n_enhanced"] == 2 and summary["id"] == 3
    assert summary["first_time"] == doc["first_time"] and summary["last_time"] == doc["last_time"]
    assert doc["first_seen"] is None and all(o["at"] is None for o in obs)  # a recording: no wall clock made up
    assert "first_seen" not in summary


def test_track_writer_without_enhanced_or_tiles(tmp_path: Path, photo: np.ndarray) -> None:
    track = make_track(photo, tid=7, enhanced_frames=())
    s = TrackWriter(tmp_path, OUTPUT).write(track)
    names = {Path(p).name for p in s["files"]}
    assert names == {"best.png", "track.json"}  # best original crop only
    assert Image.open(tmp_path / "tracks/7/best.png").text["AI-Generated"] == "false"
    s2 = TrackWriter(tmp_path / "notiles", OutputConfig(tiles=False)).write(make_track(photo, tid=8))
    assert [Path(p).name for p in s2["files"]] == ["track.json"] and s2["n_enhanced"] == 2


# ---------------------------------------------------------------------------- gallery


def tiles_of(faces: list[Face]) -> list[Tile]:
    return [Tile(f.lr, f.enhanced, f.frame_index, f.time, f.entry) for f in faces]


def test_gallery_three_tracks_and_none(tmp_path: Path, photo: np.ndarray) -> None:
    tracks = [make_track(photo, tid=t, enhanced_frames=e) for t, e in ((5, (0, 1, 2, 3)), (2, (1,)), (9, ()))]
    rows = [Row([f"#{t.id}"], tiles_of(t.enhanced[:3])) for t in tracks]
    rows[2].fallback = tracks[2].faces[1].crop  # nothing enhanced: an original crop
    path = tmp_path / "gallery.png"
    draw_sheet(path, [Section(None, rows)], per_track=3)
    img = Image.open(path)
    assert img.text["AI-Generated"] == "true"
    w, h = img.size
    assert 3 * 96 < h < 1000 and w >= 3 * 2 * 96
    arr = np.asarray(img)
    assert arr.std() > 10  # it has content, not a blank sheet

    empty = tmp_path / "empty.png"
    draw_sheet(empty, [], per_track=3)
    e = Image.open(empty)
    assert e.size[1] < 200 and e.text["AI-Generated"] == "false"


def test_gallery_caps_rows(tmp_path: Path, photo: np.ndarray) -> None:
    _, f = cctv_face(photo)
    rows = [Row([f"#{i}"], tiles_of([f])) for i in range(1, 231)]
    path = tmp_path / "many.png"
    draw_sheet(path, [Section(None, rows)], per_track=1)
    h = Image.open(path).size[1]
    one = tmp_path / "one.png"
    draw_sheet(one, [Section(None, rows[:1])], per_track=1)
    row = Image.open(one).size[1] - 56
    assert MAX_ROWS * row < h < (MAX_ROWS + 2) * row + 100  # MAX_ROWS rows plus the "omitted" footer


# ---------------------------------------------------------------------------- Manifest


def test_manifest_interrupted_then_complete(tmp_path: Path, photo: np.ndarray) -> None:
    info = {"inputs": ["cam1.mp4"], "settings": {"detect": {"threshold": np.float32(0.5)}},
            "models": {"det": {"path": tmp_path / "det.onnx", "sha256": "ab" * 32}},
            "generator": {"name": "g", "sha256": "cd" * 32, "trained": False}, "version": "0.1.0"}
    m = Manifest(tmp_path, info)
    track = make_track(photo)
    m.add_faces(track.faces[:2])
    m.add_track(TrackWriter(tmp_path, OUTPUT).write(track))
    p = m.write({"detect": 1.5}, {"frames": 2}, status="interrupted")
    doc = json.loads(p.read_text())
    assert doc["status"] == "interrupted" and doc["stats"]["frames"] == 2
    # faces.csv already holds what was added (streamed, not buffered to the end)
    assert len(list(csv.reader((tmp_path / "faces.csv").open()))) == 3

    m.add_faces(track.faces[2:])
    (tmp_path / "gallery.png").write_bytes(b"x" * 123)
    p = m.write({"detect": 2.0}, {"frames": 4}, status="complete")
    doc = json.loads(p.read_text())
    assert doc["status"] == "complete" and "AI reconstructions" in doc["provenance"]
    assert doc["models"]["det"]["sha256"] == "ab" * 32 and doc["generator"]["trained"] is False
    assert doc["settings"]["detect"]["threshold"] == 0.5
    assert datetime.fromisoformat(doc["started"]) <= datetime.fromisoformat(doc["ended"])
    assert doc["tracks"][0]["id"] == 3 and doc["timings"] == {"detect": 2.0}
    listed = {f["path"]: f["bytes"] for f in doc["files"]}
    assert "manifest.json" not in listed and not any(k.endswith(".tmp") for k in listed)
    on_disk = {q.relative_to(tmp_path).as_posix() for q in tmp_path.rglob("*") if q.is_file()}
    assert set(listed) == on_disk - {"manifest.json"}
    for rel, size in listed.items():
        assert (tmp_path / rel).stat().st_size == size
    assert listed["gallery.png"] == 123 and "tracks/3/track.json" in listed
    rows = list(csv.DictReader((tmp_path / "faces.csv").open()))
    assert len(rows) == 4
    assert [r["frame"] for r in rows] == ["10", "11", "12", "13"]
    assert [r["enhanced"] for r in rows] == ["0", "1", "0", "1"] and rows[1]["tracker_id"] == "3"
    m.close()


@pytest.mark.parametrize("chunk", [3, 1000], ids=["merged", "in-memory"])
def test_faces_csv_ends_in_frame_order_with_class_name(tmp_path: Path, photo: np.ndarray, monkeypatch,
                                                       chunk: int) -> None:
    """Rows arrive as tracks end (a late track's rows after an early untracked face's); the finished files
    are in frame order, then tracker id, whether sorted in memory or merged from chunks."""
    from pipeline.io.sinks import detections

    monkeypatch.setattr(detections, "SORT_CHUNK", chunk)
    m = Manifest(tmp_path, {"inputs": ["x"]})
    late = make_track(photo, tid=5)  # frames 10-13, written when it ends
    early = make_track(photo, tid=2)  # frames 10-13 too, ended earlier
    m.add_faces([dataclasses.replace(late.faces[0], frame_index=14, track_id=-1)])
    m.add_rows(TrackWriter(tmp_path, OUTPUT).write_track(late).rows)
    m.add_faces([dataclasses.replace(late.faces[0], frame_index=2, track_id=-1)])
    m.add_rows(TrackWriter(tmp_path, OUTPUT).write_track(early).rows)
    before = (tmp_path / "faces.csv").read_text()
    m.close()
    rows = list(csv.DictReader((tmp_path / "faces.csv").open()))
    assert [(int(r["frame"]), int(r["tracker_id"])) for r in rows] == [
        (2, -1), (10, 2), (10, 5), (11, 2), (11, 5), (12, 2), (12, 5), (13, 2), (13, 5), (14, -1)]
    assert {r["class_name"] for r in rows} == {"face"}
    assert sorted(before.splitlines()) == sorted((tmp_path / "faces.csv").read_text().splitlines()), "same rows"
    lines = [json.loads(x) for x in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert [(d["frame"], d["tracker_id"]) for d in lines] == [(int(r["frame"]), int(r["tracker_id"])) for r in rows]
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob("*.tmp"))


def test_annotator_never_covers_its_own_face(photo: np.ndarray) -> None:
    image, face = cctv_face(photo, face_px=70, at=(45, 20), size=(160, 120))  # face fills the frame
    out = Annotator(OUTPUT)(image, [face], {face.track_id: face})
    x1, y1, x2, y2 = int_box(face)
    xa, ya = min(x2, 159) - 1, min(y2, 119) - 1  # clear of the (clamped) 2 px rectangle
    assert np.array_equal(out[y1 + 2 : ya, x1 + 2 : xa], image[y1 + 2 : ya, x1 + 2 : xa])


def test_video_frame_of_other_size_is_letterboxed_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "mixed.mp4"
    w = VideoWriter(path, 320, 240, 10.0, OUTPUT)
    w.write(np.full((240, 320, 3), 200, np.uint8), 0.0)
    w.write(np.full((320, 240, 3), 200, np.uint8), 0.1)  # rotated/resized frame mid-stream
    w.close()
    frames, c = decode(path)
    assert len(frames) == 2
    second = frames[1].to_ndarray(format="bgr24")
    assert second[:, :40].mean() < 20 and second[:, 140:180].mean() > 180  # pillarboxed, aspect kept
    c.close()


def test_video_bad_preset_is_a_config_error(tmp_path: Path) -> None:
    from pipeline.core.errors import ConfigError

    with pytest.raises(ConfigError, match="video_preset"):
        VideoWriter(tmp_path / "bad.mp4", 64, 48, 25.0, OutputConfig(video_preset="no-such-preset"))
    assert not (tmp_path / "bad.mp4").exists()


def test_gallery_row_hides_near_duplicates_and_marks(tmp_path: Path, photo: np.ndarray) -> None:
    faces = make_track(photo, tid=4, enhanced_frames=(1, 2, 3)).enhanced
    # the same face at three sizes is itself a near-duplicate: make two of them look different
    faces[1].lr = 255 - faces[1].lr
    faces[2].lr = np.ascontiguousarray(np.rot90(faces[2].lr))

    def pick(cands: list[Face], dedupe: float = 0.9) -> tuple[list[Face], list[Face]]:
        return select(cands, 4, lambda f: f.quality, lambda f: f.lr, dedupe)

    assert len(pick(faces)[0]) == 3
    dup = dataclasses.replace(faces[0], frame_index=99, quality=faces[0].quality - 1e-3)
    chosen, dupes = pick([*faces, dup])  # same pixels, another frame: a near-duplicate
    assert sorted(f.frame_index for f in chosen) == [11, 12, 13] and [f.frame_index for f in dupes] == [99]
    assert [f.frame_index for f in pick([*faces, dup], dedupe=1.0)[0]].count(99) == 1
    path = tmp_path / "g.png"
    draw_sheet(path, [Section(None, [Row(["#4", "1 near-duplicate(s) hidden"], tiles_of(chosen))])], per_track=4)
    sheet = np.asarray(Image.open(path))
    assert sheet.shape[1] >= 190 + 3 * 2 * 128  # three pairs drawn at 128 px
