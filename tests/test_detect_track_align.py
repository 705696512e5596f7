"""Detector on real photos, tracker on a moving face, aligner geometry."""

import csv
from fractions import Fraction

import cv2
import numpy as np
import pytest

from pipeline.core.config import AlignConfig, TrackConfig
from pipeline.core.errors import ModelNotFound
from pipeline.core.geometry import CROP, TEMPLATE, similarity
from pipeline.core.models import find_model
from pipeline.stages.align import Aligner, choose_entry, warp
from pipeline.stages.track import Tracker
from support.paths import IMAGES, MODELS, needs_shared


@pytest.mark.parametrize("name, lo, hi", [("obama_1.jpg", 1, 1), ("two_people.jpg", 2, 2), ("crowd_selfie_sample.jpg", 100, 10_000)])
def test_detector_counts_faces(detector, name, lo, hi):
    faces = detector(cv2.imread(str(IMAGES / name)))
    assert lo <= len(faces) <= hi
    for f in faces:
        assert f.kps.shape == (5, 2) and 0 < f.score <= 1
        x1, y1, x2, y2 = f.box
        # keypoints lie inside (or very near) their box
        assert (f.kps[:, 0] > x1 - 5).all() and (f.kps[:, 0] < x2 + 5).all()


@pytest.mark.parametrize("model", ["det_500m.onnx", "det_2.5g.onnx"])
def test_torch_runtime_finds_the_faces_onnxruntime_finds(detector, model, tmp_path):
    """The detector's graph run by torch (`detect.runtime: torch`, what a GPU without onnxruntime-gpu uses)
    against ONNX Runtime through insightface, on real photos, through the whole stage (small-face pass
    included): the same faces, boxes and keypoints to 1e-3 px. From the converted safetensors form and in
    one batched call the answers are the same again."""
    from pipeline.core.config import DetectConfig
    from pipeline.core.onnx_torch import read_onnx, save_graph
    from pipeline.stages.detect import Detector
    from pipeline.stages.scrfd import TorchSCRFD

    ort_det = Detector(DetectConfig(model=model), MODELS, device="cpu")
    torch_det = Detector(DetectConfig(model=model, runtime="torch"), MODELS, device="cpu")
    assert torch_det.choice.names == ["torch-cpu"] and ort_det.choice.names[0] == "CPUExecutionProvider"
    photos = [cv2.imread(str(IMAGES / n)) for n in ("crowd_selfie_sample.jpg", "two_people.jpg", "obama_1.jpg")]
    big = np.full((1080, 1920, 3), 90, np.uint8)  # a camera-sized frame: the small-face pass runs too
    big[300:300 + photos[1].shape[0], 200:200 + photos[1].shape[1]] = photos[1][:780, :1720]
    for image in [*photos, big]:
        a, b = ort_det(image), torch_det(image)
        assert len(a) == len(b) > 0
        for fa, fb in zip(a, b):
            assert np.abs(fa.box - fb.box).max() < 1e-3 and np.abs(fa.kps - fb.kps).max() < 1e-3
            assert abs(fa.score - fb.score) < 1e-5
    save_graph(read_onnx(find_model(model, MODELS)), tmp_path / "det.safetensors")
    converted = TorchSCRFD(tmp_path / "det.safetensors", "cpu")
    size = torch_det.network_size(640, 480)
    shots = [cv2.resize(p, (640, 480)) for p in photos]
    batched = converted.detect_batch(shots, size)
    for shot, (det, kps) in zip(shots, batched):
        one, one_kps = ort_det.model.detect(shot, input_size=size)
        assert det.shape == one.shape and np.abs(det - one).max() < 1e-3 and np.abs(kps - one_kps).max() < 1e-3


def test_small_faces_in_a_large_frame_are_found(detector):
    """A 1920×1080 camera with a 24 px face: the whole-frame pass shrinks it to 8 px and misses it; the
    small-face pass at the camera's own pixels finds it, once, with its keypoints."""
    from pipeline.core.config import DetectConfig
    from pipeline.stages.detect import Detector

    photo = cv2.imread(str(IMAGES / "obama_small.jpg"))  # face about half the photo's height
    face = cv2.resize(photo, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[700 : 700 + face.shape[0], 1500 : 1500 + face.shape[1]] = face
    whole_only = Detector(DetectConfig(small_faces=0.0), MODELS)
    assert whole_only(frame) == []
    assert detector.small_size(1920, 1080) == (1920, 1088)
    (found,) = detector(frame)
    x1, y1, x2, y2 = found.box
    assert 1500 <= x1 < x2 <= 1500 + face.shape[1] + 4 and 700 <= y1 < y2 <= 700 + face.shape[0] + 4
    assert 14 <= found.size <= 40
    # a frame the whole-frame pass sees at its own size gets no second pass (the office clip, eval-video)
    assert detector.small_size(640, 360) is None and whole_only.small_size(1920, 1080) is None


@pytest.mark.slow
@needs_shared
def test_d1_camera_is_seen_at_its_own_size(detector):
    """A 768×576 CCTV camera (pedestrians clip) is no longer shrunk to 640 for detection: on every 10th of its
    first 400 frames the detector finds far more of its 12–20 px faces."""
    from pipeline.core.config import DetectConfig
    from pipeline.io.sources import open_source
    from pipeline.stages.detect import Detector
    from support.paths import VIDEO

    shrunk = Detector(DetectConfig(small_faces=0.0), MODELS)
    assert detector.network_size(768, 576) == (768, 576) and shrunk.network_size(768, 576) == (640, 480)
    assert detector.small_size(768, 576) is None  # one pass, not two
    found = {"own": 0, "shrunk": 0}
    with open_source(str(VIDEO / "pedestrians_vtest.avi")) as src:
        for f in src:
            if f.index >= 400:
                break
            if f.index % 10 == 0:
                found["own"] += len(detector(f.image))
                found["shrunk"] += len(shrunk(f.image))
    assert found["own"] >= 2 * found["shrunk"] + 4, found


def _hd_frame(face: np.ndarray, x: int = 1500, y: int = 700) -> np.ndarray:
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[y : y + face.shape[0], x : x + face.shape[1]] = face
    return frame


@needs_shared
def test_half_d1_camera_faces_are_found_at_their_true_shape(detector, tmp_path):
    """A half-D1 DVR channel (352×576 stored, 24:11 pixels): the office recording squeezed so. Read at its
    stored pixels (as before 2026-11-28) the detector finds none of the squeezed faces; read square, it finds
    the face in every frame."""
    import av

    from pipeline.io.sources import open_source
    from support.media import encode
    from support.paths import VIDEO

    with av.open(str(VIDEO / "office_fisheye_cctv.mp4")) as c:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(10), c.decode(video=0))]
    stored = [cv2.resize(cv2.copyMakeBorder(cv2.resize(f, (768, 432)), 72, 72, 0, 0, cv2.BORDER_CONSTANT),
                         (352, 576), interpolation=cv2.INTER_AREA) for f in frames]
    clip = encode(tmp_path / "ch2.mp4", stored, aspect=Fraction(24, 11))
    with av.open(str(clip)) as c:
        assert sum(len(detector(f.to_ndarray(format="bgr24"))) for f in c.decode(video=0)) == 0
    with open_source(str(clip)) as src:
        assert all(len(detector(f.image)) >= 1 for f in src)


def test_small_face_pass_around_followed_faces(detector):
    """Between full small-face passes the detector looks only near the faces it follows: there it finds them as
    the full pass does, elsewhere it finds nothing."""
    photo = cv2.imread(str(IMAGES / "obama_small.jpg"))
    frame = _hd_frame(cv2.resize(photo, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA))
    (full,) = detector(frame)
    (near,) = detector(frame, around=[full.box + np.float32([6, -4, 6, -4])])  # where it was a frame ago
    assert np.abs(near.box - full.box).max() < 1.5
    assert detector(frame, around=[]) == []
    assert detector(frame, around=[np.float32([100, 100, 124, 124])]) == []  # looked at the wrong place


@pytest.mark.slow
@needs_shared
def test_video_run_keeps_small_faces_between_full_passes(tmp_path):
    """A 1080p clip whose 24 px face appears at frame 7: the full small-face pass (every 5th frame) finds it at
    frame 10, and the passes around it keep finding it in every frame after."""
    import av

    from support.paths import run_cli

    photo = cv2.imread(str(IMAGES / "obama_small.jpg"))
    face = cv2.resize(photo, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    clip = tmp_path / "hd.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for i in range(25):
            frame = _hd_frame(face, 1500 + 2 * i) if i >= 7 else _hd_frame(face[:0])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    res = run_cli("process", str(clip), "--out", str(tmp_path / "o"), "--models", str(MODELS), "--quiet",
                  "--set", "enhance.policy=none", "--set", "output.video=false")
    assert res.returncode == 0, res.stderr
    frames = [int(r["frame"]) for r in csv.DictReader(open(tmp_path / "o" / "faces.csv"))]
    assert frames == list(range(10, 25))


def test_small_face_pass_adds_faces_without_duplicates(detector):
    """The crowd photo (1600×898) holds hundreds of 10–40 px faces: the small-face pass finds far more than
    the whole-frame pass alone, never the same face twice; a large face in a large photo stays one face."""
    import supervision as sv

    from pipeline.core.config import DetectConfig
    from pipeline.stages.detect import DUPLICATE_IOU, Detector

    crowd = cv2.imread(str(IMAGES / "crowd_selfie_sample.jpg"))
    alone = Detector(DetectConfig(small_faces=0.0), MODELS)(crowd)
    both = detector(crowd)
    assert len(both) >= 2.5 * len(alone)
    iou = sv.box_iou_batch(np.stack([f.box for f in both]), np.stack([f.box for f in both]))
    np.fill_diagonal(iou, 0)
    assert iou.max() <= DUPLICATE_IOU
    (big,) = detector(cv2.imread(str(IMAGES / "obama_3.jpg")))  # 1434×2333, a 360 px face
    assert big.size > 200


def test_tracker_keeps_one_id_for_a_moving_face(detector):
    """A real face slides steadily across a 640×360 canvas over 60 frames: one track ID throughout."""
    photo = cv2.imread(str(IMAGES / "obama_small.jpg"))
    face = cv2.resize(photo, None, fx=80 / photo.shape[1], fy=80 / photo.shape[1], interpolation=cv2.INTER_AREA)
    tracker = Tracker(TrackConfig(), fps=30)
    ids = []
    for i in range(60):
        canvas = np.full((360, 640, 3), 90, np.uint8)
        x, y = 20 + i * 8, 120 + i
        canvas[y : y + face.shape[0], x : x + face.shape[1]] = face
        faces = detector(canvas)
        tracker(faces, i / 30)
        ids += [f.track_id for f in faces if f.track_id > 0]
    assert len(ids) >= 50
    assert len(set(ids)) == 1
    assert list(tracker.tracks) == [ids[0]] and tracker.tracks[ids[0]].last_seen == 59 / 30  # the open Track
    assert tracker.ended(60 / 30) == []  # just seen
    assert [t.id for t in tracker.ended(10.0)] == [ids[0]]  # ended once unseen for lost_seconds …
    assert tracker.finish() == [] and not tracker.tracks  # … and handed over only once


@pytest.mark.parametrize("fps, gap", [(1.0, 1.0), (30000 / 1001, 30 * 1001 / 30000), (25.0, 1.3)])
def test_tracker_follows_a_face_seen_about_once_a_second(detector, fps, gap):
    """Detections `gap` s apart, more than the default `lost_seconds`: a DVR recording at 1 fps, detection every
    30th frame of a 29.97 fps one, a camera that declares 25 fps and sends one frame every 1.3 s. A new track
    must live until the detection that confirms it: one ID throughout (before 2026-11-28: no track at all)."""
    photo = cv2.imread(str(IMAGES / "obama_small.jpg"))
    face = cv2.resize(photo, None, fx=80 / photo.shape[1], fy=80 / photo.shape[1], interpolation=cv2.INTER_AREA)
    tracker = Tracker(TrackConfig(), fps=fps)
    ids = []
    for i in range(10):
        canvas = np.full((360, 640, 3), 90, np.uint8)
        canvas[120 + i : 120 + i + face.shape[0], 200 + 6 * i : 200 + 6 * i + face.shape[1]] = face
        faces = detector(canvas)
        tracker(faces, i * gap)
        assert tracker.ended(i * gap) == []
        ids += [f.track_id for f in faces if f.track_id > 0]
    assert len(ids) == 9 and len(set(ids)) == 1  # confirmed at the second detection, kept to the last
    assert tracker.lost_seconds == pytest.approx(2 * gap)
    assert tracker.ended(9 * gap + 2 * gap + 0.01) != []  # and it ends, two gaps after it was last seen


@needs_shared
@pytest.mark.parametrize("rate", [10, 5])
def test_tracker_follows_faces_that_move_more_than_their_size_between_detections(detector, rate):
    """Two real faces (CelebA val) walk towards each other at 170 px/s, paths 35 px apart, seen at 10 or 5 fps:
    a face moves 0.5-1.1 of its width between detections. Plain IoU (before 2026-11-28) tracked one person in
    three (32 of 96 faces at 10 fps, 16 of 49 at 5) and never the first; the gap-scaled buffer follows both,
    and no track ever holds the two people."""
    import glob

    from support.paths import FACES

    files = sorted(glob.glob(str(FACES / "val" / "*.jpg")))
    faces = [cv2.resize(cv2.imread(files[i]), (44, 50), interpolation=cv2.INTER_AREA) for i in (0, 40)]
    paths = [((40, 60), (170, 10)), ((560, 95), (-170, 5))]
    background = np.full((360, 640, 3), 110, np.uint8)
    tracker = Tracker(TrackConfig(), fps=rate)
    seen, tracked, people_of = 0, 0, {}
    for k in range(int(3.2 * rate)):
        t, image, centres = k / rate, background.copy(), []
        for face, ((x0, y0), (vx, vy)) in zip(faces, paths):
            x, y = int(x0 + vx * t), int(y0 + vy * t)
            image[y : y + 50, x : x + 44] = face
            centres.append(np.array([x + 22, y + 25]))
        found = detector(image)
        tracker(found, t)
        for f in found:
            person = int(np.argmin([np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - c) for c in centres]))
            seen += 1
            if f.track_id > 0:
                tracked += 1
                people_of.setdefault(f.track_id, set()).add(person)
    assert seen >= 3 * rate * 2 and tracked >= 0.85 * seen
    assert all(len(p) == 1 for p in people_of.values()) and set().union(*people_of.values()) == {0, 1}


def test_aligner_maps_keypoints_to_template_and_keeps_inverse(detector):
    image = cv2.imread(str(IMAGES / "obama_1.jpg"))
    (face,) = detector(image)
    Aligner(AlignConfig())(image, face)
    assert face.crop.shape == (CROP, CROP, 3)
    assert face.entry == 64  # a large photo face enters at the largest stage
    assert face.lr.shape == (64, 64, 3)
    mapped = cv2.transform(face.kps[None], face.matrix)[0]
    assert np.abs(mapped - TEMPLATE).max() < 6  # 5 points land on the canonical template
    back = cv2.transform(TEMPLATE[None], face.inverse)[0]
    assert np.abs(back - face.kps).max() < 6 / (CROP / face.size)  # inverse returns to source px
    assert 0 < face.quality <= 1


def test_lr_input_is_resampled_from_source_not_from_the_crop():
    """The 16 px input of a large face equals area-averaging the source, not a resize of a blurry upscale."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)
    m = similarity(TEMPLATE * 2.5 + 20)  # source face 2.5× the canonical size
    lr = warp(image, m, 16)
    crop = warp(image, m, 128)
    via_crop = cv2.resize(crop, (16, 16), interpolation=cv2.INTER_AREA)
    direct_err = np.abs(lr.astype(float) - via_crop.astype(float)).mean()
    assert lr.shape == (16, 16, 3)
    assert direct_err < 12  # same picture …
    # … and a face small in the source picks a small entry, a larger one a larger entry
    # source pixels across the crop = 128 × the template scale: 15.4 → 16, 25.6 → 32 (not cut down to 16), 38.4 → 64
    md = AlignConfig().max_downscale
    assert choose_entry(similarity(TEMPLATE * 0.12 + 5), [16, 32, 64], md) == 16
    assert choose_entry(similarity(TEMPLATE * 0.2 + 5), [16, 32, 64], md) == 32
    assert choose_entry(similarity(TEMPLATE * 0.3 + 5), [16, 32, 64], md) == 64
    assert choose_entry(similarity(TEMPLATE * 0.2 + 5), [16, 32, 64], max_downscale=2.0) == 16  # the old rule
    assert choose_entry(similarity(TEMPLATE * 0.9 + 5), [16, 32], md) == 32


@needs_shared
def test_missing_model_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("ENHANCE_MODELS", str(tmp_path / "env"))
    with pytest.raises(ModelNotFound) as e:
        find_model("det_500m.onnx", tmp_path / "cli")
    msg = str(e.value)
    assert "det_500m.onnx" in msg and str(tmp_path / "cli") in msg and str(tmp_path / "env") in msg
    assert find_model("det_500m.onnx", MODELS) == MODELS / "det_500m.onnx"


def test_faces_the_camera_resolves_are_never_synthesized(detector):
    """A face spanning more camera pixels than `align.resolved_span` is `resolved`: eval-video measured the
    generator below a plain resize there. The policy never sends it to the generator, under any mode, but
    keeps it (its crop is shown as captured); a CCTV-sized copy of the same face is enhanced."""
    from pipeline.core.config import EnhanceConfig
    from pipeline.core.geometry import source_span
    from pipeline.core.types import Track
    from pipeline.stages.enhance.policy import Policy

    image = cv2.imread(str(IMAGES / "obama_1.jpg"))
    small = cv2.resize(image, None, fx=0.08, fy=0.08, interpolation=cv2.INTER_AREA)
    aligner = Aligner(AlignConfig())
    (big,) = [aligner(image, f) for f in detector(image)]
    (tiny,) = [aligner(small, f) for f in detector(small)]
    assert source_span(big.matrix) > AlignConfig().resolved_span and big.resolved
    assert source_span(tiny.matrix) < AlignConfig().resolved_span and not tiny.resolved
    for mode in ("all", "every_n", "best_k"):
        policy = Policy(EnhanceConfig(policy=mode))
        for face in (big, tiny):
            track = Track(id=1, source="photo")
            track.faces.append(face)
            assert policy.select(track, face) is (face is tiny) and policy.keeps(track, face)
    looser = Aligner(AlignConfig(resolved_span=4096.0))(image, detector(image)[0])
    assert not looser.resolved  # the limit follows the setting
