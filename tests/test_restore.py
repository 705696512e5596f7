"""The codec-restoration filter (`pipeline/restore.py`): its fit, the shipped filter on real coded video, and
what the aligner hands the generator with it on and off."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import HEADS, IMAGES, MODELS, require, run_cli


def _scene(seed: int, size: int = 96) -> np.ndarray:
    """A textured colour picture: smooth shapes plus fine detail."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def test_the_fit_recovers_a_known_filter_and_applies_it_as_fitted(tmp_path):
    """`LeastSquares` fitted on pictures and their blurred copies (a linear map) gives a filter that makes the blurred
    copy of a picture it never saw: `Restorer.filter` (OpenCV) applies the neighbourhoods the fit used (numpy), also
    after a round trip through its file."""
    from pipeline.restore import LeastSquares, Restorer

    fit = LeastSquares()
    for s in range(6):
        x = _scene(s)
        fit.add(x, cv2.GaussianBlur(x, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT_101))
    Restorer.from_fit(*fit.solve()).save(tmp_path / "f.safetensors", {"name": "f"})
    f = Restorer(tmp_path / "f.safetensors")
    x = _scene(99)
    want = cv2.GaussianBlur(x, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT_101).astype(int)
    assert np.abs(f.filter(x).astype(int) - want)[6:-6, 6:-6].max() <= 2
    assert np.abs(x.astype(int) - want).mean() > 5  # the test is not trivially passed by the identity


def test_the_shipped_filter_wins_back_part_of_a_real_codec_loss(tmp_path):
    """A real photo shrunk to a CCTV-sized frame, encoded with H.264 at CRF 30 and decoded: the shipped filter brings
    the frame closer to the one before the codec, and `region` restores exactly the pixels under a crop."""
    from pipeline.align import warp
    from pipeline.eval_video import psnr
    from pipeline.restore import Restorer, footprint
    from pipeline.truth import encode, read_frames

    require(IMAGES / "obama_1.jpg")
    img = cv2.imread(str(IMAGES / "obama_1.jpg"))
    clean = cv2.resize(img, (160, 120), interpolation=cv2.INTER_AREA)
    encode([clean] * 3, tmp_path / "c.mp4", 25, crf=30)
    coded = list(read_frames(tmp_path / "c.mp4"))[-1]
    r = Restorer()
    before, after = psnr(coded, clean), psnr(r.filter(coded), clean)
    assert after > before + 0.1, (before, after)
    m = np.array([[2.0, 0, -60], [0, 2.0, -30]])  # a 64×64 source square → the 128 crop
    assert footprint(m, coded.shape) == (22, 7, 103, 88)  # the crop's source square, 8 pixels around
    pixels, shifted = r.region(coded, m)
    assert np.array_equal(pixels, r.filter(coded[7:88, 22:103]))
    assert np.array_equal(warp(pixels, shifted, 32), warp(np.pad(pixels, ((7, 0), (22, 0), (0, 0))), m, 32))


@pytest.fixture(scope="module")
def face_in_video(tmp_path_factory):
    """A real talking-head frame shrunk so the face is about 20 px tall, H.264-coded, and its detection."""
    from pipeline.config import DetectConfig
    from pipeline.detect import Detector
    from pipeline.truth import encode, plan_shrink, read_frames

    require(HEADS / "d10.mp4", MODELS / "det_500m.onnx")
    hr = next(read_frames(HEADS / "d10.mp4"))
    det = Detector(DetectConfig(), MODELS)
    face_h = det(hr)[0].height
    shrink = plan_shrink(hr.shape[1], hr.shape[0], face_h, 20.0)
    path = tmp_path_factory.mktemp("rv") / "c.mp4"
    encode([shrink.apply(hr)] * 2, path, 25, crf=26)
    frame = list(read_frames(path))[-1]
    return frame, det(frame)[0]


def test_the_aligner_gives_the_generator_restored_pixels_and_keeps_the_camera_s(face_in_video):
    """With `align.restore` the generator's input is the restored cut, close to the camera's own (a restoration,
    not another picture); the original the product shows stays the camera's pixels; off, nothing is restored."""
    import dataclasses

    from pipeline.align import Aligner, warp
    from pipeline.config import AlignConfig
    from pipeline.eval_video import psnr

    frame, face = face_in_video
    on = Aligner(AlignConfig())(frame, dataclasses.replace(face))
    assert on.restored is not None and on.restored.shape == on.lr.shape and on.generator_input is on.restored
    assert np.array_equal(on.lr, warp(frame, on.matrix, on.entry))  # the camera's pixels, untouched
    assert 30 < psnr(on.restored, on.lr) < 60
    off = Aligner(AlignConfig(restore=False))(frame, dataclasses.replace(face))
    assert off.restored is None and off.generator_input is off.lr and np.array_equal(off.lr, on.lr)
    resolved = Aligner(AlignConfig(resolved_span=16.0))(frame, dataclasses.replace(face))
    assert resolved.resolved and resolved.restored is None  # shown as captured: nothing to restore for


def test_fit_restore_keeps_held_out_people_out(tmp_path):
    """`run.py fit-restore` skips the split's evaluation people and refuses a clip in neither list, in one line."""
    require(HEADS / "d0.mp4")
    stray = tmp_path / "someone.mp4"
    stray.write_bytes(b"")
    r = run_cli("fit-restore", "--clips", str(HEADS / "d0.mp4"), str(stray), "--out", str(tmp_path / "f.safetensors"))
    assert r.returncode == 2 and "d0.mp4: held out for evaluation" in r.stdout
    assert r.stderr.strip().count("\n") == 0 and "someone.mp4 is not in the train list" in r.stderr
    assert not (tmp_path / "f.safetensors").exists()
