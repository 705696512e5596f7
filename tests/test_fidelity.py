"""The colour anchor: an enhanced face keeps the camera's broad colours, and the generator's detail."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.stages.enhance.anchor import anchor
from support.paths import IMAGES, MODELS, needs_shared


def test_anchor_removes_a_colour_cast_and_keeps_fine_detail():
    rng = np.random.default_rng(0)
    truth = cv2.GaussianBlur(rng.integers(40, 200, (128, 128, 3)).astype(np.uint8), (0, 0), 6)
    lr = cv2.resize(truth, (32, 32), interpolation=cv2.INTER_AREA)
    detail = np.indices((128, 128)).sum(0) % 2 * 16 - 8  # a 1 px checkerboard: finer than the input shows
    cast = np.array([-12, 3, 15])  # bluer less, redder more: the drift the anchor is there for
    enhanced = np.clip(truth.astype(int) + detail[..., None] + cast, 0, 255).astype(np.uint8)
    out = anchor(enhanced, lr)
    shrunk = cv2.resize(out, (32, 32), interpolation=cv2.INTER_AREA).astype(float)
    before = cv2.resize(enhanced, (32, 32), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs((before - lr).mean((0, 1)) - cast).max() < 1.5  # the cast was there …
    assert np.abs((shrunk - lr).mean((0, 1))).max() < 1.0  # … and is gone
    hp = lambda x: x.astype(float) - cv2.GaussianBlur(x, (0, 0), 1.5).astype(float)  # noqa: E731
    assert np.corrcoef(hp(out).ravel(), hp(enhanced).ravel())[0, 1] > 0.95  # the fine detail stays
    assert anchor(enhanced, None) is not enhanced and np.array_equal(anchor(enhanced, None), enhanced)


@needs_shared
def test_enhanced_faces_come_out_anchored_to_the_camera():
    """Through the real stage: the tile shrunk back to the input size agrees with the input's colours."""
    from pipeline.core.config import EnhanceConfig
    from pipeline.stages.enhance.stage import Enhancer

    face = _small_face()
    enhancer = Enhancer(EnhanceConfig(backend="torch-cpu"), "cpu")
    try:
        enhancer([face])
    finally:
        enhancer.close()
    e = face.lr.shape[0]
    back = cv2.resize(face.enhanced, (e, e), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs((back - face.lr).mean((0, 1))).max() < 1.0
    assert face.confidence is not None and face.consistency is not None


def test_training_anchor_matches_the_shipped_anchor():
    """`train.anchor`: the losses see exactly what the pipeline outputs (to uint8 rounding), gradients flow."""
    import torch

    from pipeline.stages.enhance.anchor import anchor_torch

    rng = np.random.default_rng(3)
    for e in (16, 32, 64):
        enhanced = cv2.GaussianBlur(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), (0, 0), 2)
        lr = cv2.resize(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), (e, e), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(enhanced).float().permute(2, 0, 1)[None].requires_grad_()
        y = anchor_torch(x, torch.from_numpy(lr).float().permute(2, 0, 1)[None])
        got = y[0].detach().permute(1, 2, 0).clamp(0, 255).numpy()
        assert np.abs(got - anchor(enhanced, lr)).max() <= 0.5 + 1e-3
        y.sum().backward()
        assert torch.isfinite(x.grad).all()


@needs_shared
def test_the_output_keeps_the_camera_crop_at_the_configured_strength():
    """`enhance.strength`: 0 gives the camera's own crop back, 1 the anchored generator output, between a mix."""
    import copy

    from pipeline.core.config import EnhanceConfig
    from pipeline.stages.enhance.anchor import blend
    from pipeline.stages.enhance.stage import Enhancer

    face = _small_face()
    out = {}
    for s in (0.0, 0.6, 1.0):
        enhancer = Enhancer(EnhanceConfig(backend="torch-cpu", strength=s), "cpu")
        try:
            f = copy.copy(face)
            enhancer([f])
            out[s] = f.enhanced
            assert enhancer.info["strength"] == s  # the manifest says what was kept
        finally:
            enhancer.close()
    assert np.array_equal(out[0.0], face.crop)
    assert np.abs(out[0.6].astype(int) - blend(out[1.0], face.crop, 0.6)).max() <= 1
    assert not np.array_equal(out[0.6], out[1.0]) and not np.array_equal(out[0.6], face.crop)


def _small_face():
    """A real photo shrunk to a CCTV-sized face, detected and aligned by the pipeline's own stages."""
    from pipeline.core.config import AlignConfig, DetectConfig
    from pipeline.stages.align import Aligner
    from pipeline.stages.detect import Detector

    photo = cv2.imread(str(IMAGES / "obama_1.jpg"))
    small = cv2.resize(photo, None, fx=0.08, fy=0.08, interpolation=cv2.INTER_AREA)
    (face,) = Detector(DetectConfig(), MODELS)(small)
    return Aligner(AlignConfig())(small, face)
