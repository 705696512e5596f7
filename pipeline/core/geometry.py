"""The canonical face crop every stage agrees on: its size, its landmark template, the generator's entry sizes.

Defined once here, because the aligner cuts crops, the generator fills them, the people grouping re-warps
them and training imitates them: if two of these disagreed by a pixel, a model would quietly see other
faces at run time than in training.
"""

from __future__ import annotations

import numpy as np

CROP = 128  # side of the canonical aligned crop, and of the generator's output
ENTRIES = (16, 32, 64)  # generator entry sizes: a face enters at the largest size the camera resolved
# insightface's ArcFace 112×112 template (face_align.arcface_dst): left eye, right eye, nose, mouth corners
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
# ArcFace's template shrunk by 0.75 and moved into the 128 crop, so the whole face, chin and some hair
# included, is in frame (close to the CelebA crops face SR is usually trained on).
TEMPLATE = ((ARCFACE_112 - 56.0) * (CROP / 112.0) * 0.75 + np.array([64.0, 66.0])).astype(np.float32)


def similarity(kps: np.ndarray, dst: np.ndarray = TEMPLATE) -> np.ndarray:
    """Least-squares similarity (Umeyama: rotation, uniform scale, shift) mapping kps onto dst, as (2, 3).

    Deterministic on purpose: a robust random-sampling fit (RANSAC/LMEDS) would crop the same face
    differently from run to run.
    """
    src = kps.astype(np.float64)
    ref = dst.astype(np.float64)
    mu_s, mu_d = src.mean(0), ref.mean(0)
    s0, d0 = src - mu_s, ref - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ fix @ vt
    var = (s0**2).sum() / len(src)
    scale = (sig * np.diag(fix)).sum() / max(var, 1e-12)
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def scale_of(m: np.ndarray) -> float:
    """How many canonical pixels one source pixel becomes."""
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))


def source_span(m: np.ndarray) -> float:
    """How many source pixels span the canonical crop: what the camera really resolved of the face."""
    return CROP / max(scale_of(m), 1e-6)


def resize_matrix(m: np.ndarray, size: int) -> np.ndarray:
    """m (source → 128 canonical crop) re-expressed for a size×size crop of the same square, pixel centres kept.

    A pixel centre u of the size crop lies at (u + 0.5)·128/size − 0.5 in the 128 crop (the area-resize
    convention that training's `cv2.resize(..., INTER_AREA)` follows); merely scaling m by size/128 would
    shift the crop by (128/size − 1)/2 canonical pixels: 1.5 px at 32, 3.5 px at 16.
    """
    r = size / CROP
    out = np.asarray(m, dtype=np.float64) * r
    out[:, 2] += 0.5 * r - 0.5
    return out
