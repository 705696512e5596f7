"""A synthetic track from a real photo: the photo shrunk into a CCTV frame at known face sizes, aligned by
the real aligner, with a stand-in for the generator, so sink and provenance tests need no detector."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.core.config import AlignConfig
from pipeline.core.types import Face, Track
from pipeline.stages.align import Aligner

from .paths import IMAGES

PHOTO = IMAGES / "obama_1.jpg"
# SCRFD-500M on obama_1.jpg (pipeline.stages.detect.Detector), fixed here so these tests need no detector.
BOX = np.array([378.3, 84.2, 609.8, 426.4], np.float32)
KPS = np.array([[440.8, 214.9], [548.0, 213.0], [495.2, 277.9], [438.8, 319.7], [548.8, 318.0]], np.float32)


def load_photo() -> np.ndarray:
    if not PHOTO.exists():
        pytest.skip(f"test photo not found: {PHOTO}")
    return cv2.imread(str(PHOTO))


def cctv_face(photo: np.ndarray, face_px: float = 40, at: tuple[int, int] = (300, 150),
              size: tuple[int, int] = (640, 360), track_id: int = 3, frame: int = 0) -> tuple[np.ndarray, Face]:
    """A W×H frame with the photo shrunk so the face box is `face_px` wide, its box's top-left at `at`;
    returns the frame and an aligned Face with a fake enhanced output."""
    W, H = size
    s = face_px / float(BOX[2] - BOX[0])
    small = cv2.resize(photo, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    ox, oy = int(at[0] - BOX[0] * s), int(at[1] - BOX[1] * s)
    image = np.full((H, W, 3), 70, np.uint8)
    # paste the (clipped) shrunk photo
    x0, y0 = max(ox, 0), max(oy, 0)
    x1, y1 = min(ox + small.shape[1], W), min(oy + small.shape[0], H)
    image[y0:y1, x0:x1] = small[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    off = np.array([ox, oy], np.float32)
    face = Face(box=(BOX.reshape(2, 2) * s + off).ravel().astype(np.float32), kps=KPS * s + off, score=0.84,
                track_id=track_id, frame_index=frame, time=frame / 25.0, source="cam1")
    Aligner(AlignConfig())(image, face)
    # Stand-in for the generator (someone else's work): a smooth upscale of the LR input, tinted.
    face.enhanced = cv2.add(cv2.resize(face.lr, (128, 128), interpolation=cv2.INTER_CUBIC), (0, 40, 0, 0))
    return image, face


def make_track(photo: np.ndarray, tid: int = 3, n: int = 4, enhanced_frames: tuple[int, ...] = (1, 3)) -> Track:
    faces = []
    for k in range(n):
        _, f = cctv_face(photo, face_px=24 + 6 * k, at=(200 + 5 * k, 120), track_id=tid, frame=10 + k)
        if k not in enhanced_frames:
            f.enhanced = None
            if k == 0:
                f.crop = f.lr = None  # the runner drops pixels it doesn't keep
        faces.append(f)
    return Track(tid, "cam1", faces=faces, candidates=[f for f in faces if f.enhanced is not None])
