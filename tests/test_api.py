"""The Python API: the README's example run as written, on the real detector, generator, video and photos."""

from __future__ import annotations

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from support.paths import IMAGES, MODELS, ROOT, needs_shared


def readme_example() -> str:
    """The first ```python block under the README's "### Python API" heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_import_pipeline_stays_light():
    code = ("import sys, pipeline; heavy = [m for m in ('pipeline.api', 'torch', 'supervision', 'cv2', 'onnxruntime')"
            " if m in sys.modules]; assert not heavy, heavy; print(pipeline.__version__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
@needs_shared
def test_readme_example_runs_on_real_video_and_photos(monkeypatch):
    import supervision as sv

    monkeypatch.chdir(ROOT)  # the example's paths are a checkout's, ../shared beside it
    ns: dict = {}
    exec(compile(readme_example(), "README.md (Python API)", "exec"), ns)  # noqa: S102 - our own README
    fe, tracks, best = ns["fe"], ns["tracks"], ns["best"]
    det = ns["detections"]  # the last frame's
    assert isinstance(det, sv.Detections) and det.tracker_id is not None
    assert {"keypoints", "quality", "enhanced", "frame", "time"} <= set(det.data)
    assert det.data["keypoints"].shape == (len(det), 5, 2) and ns["annotated"].shape == ns["image"].shape
    assert len(tracks) >= 2 and fe.stats.frames == 150 and not fe.tracks  # finish() ended every track
    for t in tracks:
        assert t.enhanced, t.id  # what the policy kept was enhanced when the track ended
        assert all(f.enhanced.shape == (128, 128, 3) and f.crop.shape == (128, 128, 3) for f in t.enhanced)
        assert [f.quality for f in t.enhanced] == sorted((f.quality for f in t.enhanced), reverse=True)
    assert best is tracks[0].enhanced[0] and 0.0 <= best.confidence <= 1.0
    faces, tiles = ns["faces"], ns["tiles"]  # the photo's
    assert len(faces) >= 1 and all(f.track_id == -1 and f.enhanced.shape == (128, 128, 3) for f in faces)
    assert len(tiles) == len(faces) and all(t.shape == (128, 128, 3) and t.dtype == np.uint8 for t in tiles)
    assert not np.array_equal(tiles[0], faces[0].enhanced)  # the "AI-enhanced" mark is on the pixels


@pytest.fixture(scope="module")
def fe():
    from pipeline import FaceEnhancer

    with FaceEnhancer(models=MODELS, device="cpu", policy="all", fps=10) as enhancer:
        assert enhancer.fps == 10 and enhancer.fps_from == "given"
        yield enhancer


@needs_shared
def test_supervision_sinks_get_plain_rows_and_times_at_the_clips_own_rate(tmp_path, caplog):
    """The office clip is 29.97 fps: read with supervision's own frame generator, the rate comes from
    `sv.VideoInfo` and the times are right; `sv.CSVSink` writes plain rows (no tile arrays in cells)."""
    import csv
    import logging

    import supervision as sv

    from pipeline import FaceEnhancer, to_detections
    from support.paths import VIDEO

    clip = VIDEO / "office_fisheye_cctv.mp4"
    info = sv.VideoInfo.from_video_path(str(clip))
    frames = 45
    with FaceEnhancer(models=MODELS, device="cpu", policy="all", fps=info) as fe, \
            sv.CSVSink(str(tmp_path / "faces.csv")) as sink:
        assert fe.fps_from == "VideoInfo.fps" and abs(fe.fps - 30000 / 1001) < 1e-6
        rows = 0
        for i, image in enumerate(sv.get_video_frames_generator(str(clip), end=frames)):
            det = to_detections(fe.process_frame(image))
            sink.append(det, custom_data={})
            rows += len(det)
            assert np.allclose(det.data["time"], i * 1001 / 30000, rtol=0, atol=1e-4)  # records.PLACES
        assert fe.stats.frames == frames and sum(t.enhanced != [] for t in fe.finish()) >= 1
    cells = [c for row in csv.reader((tmp_path / "faces.csv").open()) for c in row]
    assert rows > 20 and max(len(c) for c in cells) < 1024, max(cells, key=len)[:200]

    from pipeline.api import frame_rate

    rate, origin = frame_rate(clip)
    assert rate == pytest.approx(30000 / 1001) and origin == "the video office_fisheye_cctv.mp4"
    assert frame_rate(None) == (None, "unknown")
    with pytest.raises(ValueError, match="fps must be positive"):
        frame_rate(0)
    caplog.set_level(logging.WARNING)
    with FaceEnhancer(models=MODELS, device="cpu", policy="none") as fe:
        fe.process_frame(np.zeros((64, 64, 3), np.uint8))
        fe.process_frame(np.zeros((64, 64, 3), np.uint8))
        assert fe.fps_from == "unknown" and fe.fps == 25.0
    said = [r.getMessage() for r in caplog.records if "no frame rate given" in r.getMessage()]
    assert len(said) == 1 and "sv.VideoInfo" in said[0], "said once"


@needs_shared
def test_frames_tracked_across_calls_and_supervision_detections(fe):
    from pipeline import to_detections

    big = cv2.imread(str(IMAGES / "obama_1.jpg"))
    photo = cv2.resize(big, None, fx=0.08, fy=0.08, interpolation=cv2.INTER_AREA)  # a CCTV-sized face (~28 px)
    first = fe.process_frame(photo)
    assert len(first) == 1 and first[0].track_id == -1 and first[0].enhanced is None  # not yet confirmed
    second = fe.process_frame(photo)
    (face,) = second
    assert face.track_id > 0 and face.enhanced is not None  # policy "all": enhanced now
    det = to_detections(second + first)
    assert det.tracker_id.tolist() == [face.track_id, -1] and det.class_id.tolist() == [0, 0]
    assert det.data["enhanced"].tolist() == [1, 0] and det.data["face"].tolist() == [0, 1]
    assert all(v.dtype != object or k == "source" for k, v in det.data.items()), "no pixels in data by default"
    assert np.isnan(det.data["enhanced_confidence"][1]) and 0 <= det.data["enhanced_confidence"][0] <= 1
    assert len(det[det.tracker_id > 0]) == 1  # supervision's own filtering slices our data too
    tiled = to_detections(second + first, tiles="array")
    assert tiled.data["tile"][0].shape == (128, 128, 3) and tiled.data["tile"][1] is None
    assert not np.array_equal(tiled.data["tile"][0], face.enhanced)  # marked
    assert np.array_equal(to_detections(second, tiles="array", mark=False).data["tile"][0], face.enhanced)
    with pytest.raises(ValueError, match="tiles must be"):
        to_detections(second, tiles="paths")  # type: ignore[arg-type]
    empty = to_detections([])
    assert len(empty) == 0 and empty.data["keypoints"].shape == (0, 5, 2)
    for _ in range(12):  # 1.2 s without the face at 10 fps: its track is lost, ended, handed over once
        fe.process_frame(np.zeros((120, 160, 3), np.uint8))
    ended = fe.pop_ended()
    assert [t.id for t in ended] == [face.track_id] and fe.pop_ended() == [] and fe.finish() == []


@needs_shared
def test_enhance_crops_aligned_or_with_keypoints(fe):
    photo = cv2.imread(str(IMAGES / "obama_1.jpg"))
    (face,) = fe.process_image(photo)
    assert face.resolved and face.enhanced is None  # a 350 px face: the camera's pixels, nothing synthesized
    small = cv2.resize(face.crop, (24, 24), interpolation=cv2.INTER_AREA)  # a canonical crop as a camera gives it
    a, b = fe.enhance_crops([face.crop, small], mark=False)
    c, = fe.enhance_crops([photo], kps=[face.kps], mark=False)  # a whole frame, aligned by its keypoints
    assert a.shape == b.shape == c.shape == (128, 128, 3)
    assert np.abs(a.astype(int) - c.astype(int)).mean() < 3  # the same face, aligned the same way
    assert np.abs(a.astype(int) - b.astype(int)).mean() > np.abs(a.astype(int) - c.astype(int)).mean()
    with pytest.raises(ValueError, match="expected an HxWx3 uint8 BGR image"):
        fe.enhance_crops([photo.astype(np.float32)])
    with pytest.raises(ValueError, match="1 crops but 2 sets of keypoints"):
        fe.enhance_crops([photo], kps=[face.kps, face.kps])


@needs_shared
def test_a_track_holds_each_observation_once_and_drops_pixels_it_no_longer_needs():
    """Every candidate is the very record in `track.faces` (no copies), and on a long track only the faces
    some holder needs (candidates, the inset, the last frame's) keep pixels, however many were seen."""
    import supervision as sv

    from pipeline import FaceEnhancer
    from support.paths import VIDEO

    clip = str(VIDEO / "office_fisheye_cctv.mp4")
    with FaceEnhancer(models=MODELS, device="cpu", policy="best_k", fps=sv.VideoInfo.from_video_path(clip)) as fe:
        most = 0
        for i, frame in enumerate(sv.get_video_frames_generator(clip)):
            if i == 240:
                break
            fe.process_frame(frame)
            for track in fe.tracks.values():
                ids = {id(f) for f in track.faces}
                assert all(id(c) in ids for c in track.candidates)
                assert len({id(f) for f in track.faces}) == len(track.faces)
                with_pixels = [f for f in track.faces if f.crop is not None or f.lr is not None]
                most = max(most, len(with_pixels))
                assert len(with_pixels) <= len(track.candidates) + 2, (len(with_pixels), len(track.candidates))
        longest = max((len(t.faces) for t in fe.tracks.values()), default=0)
    assert longest >= 50 and most >= 1, (longest, most)
