"""Randomised degradation chain: 128 px aligned face → entry-size (16/32/64) low-res input like real footage.

Order: slight crop misalignment → optical (Gaussian) or motion blur → downscale (area/bilinear/bicubic)
→ sensor noise → compression at the low resolution (JPEG or single-frame H.264). A share of samples is
left clean (area downscale only), which is what a sharp, well-lit source gives. `clean()` is the eval's
clean input; `degrade(..., rng=np.random.default_rng(seed))` is reproducible for the eval's cctv mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class DegradeConfig:
    p_clean: float = 0.5  # area downscale only
    p_misalign: float = 0.5
    shift: float = 2.0  # max shift in 128 px units
    rotate: float = 3.0  # degrees
    scale: float = 0.04  # relative
    p_blur: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 1.0)  # in low-res pixels
    p_motion: float = 0.15
    motion_len: tuple[float, float] = (1.0, 2.5)  # in low-res pixels
    p_noise: float = 0.5
    noise_sigma: tuple[float, float] = (1.0, 8.0)  # 0–255 scale
    p_jpeg: float = 0.45
    jpeg_quality: tuple[int, int] = (30, 90)
    p_h264: float = 0.15
    h264_crf: tuple[int, int] = (23, 38)


def clean(hr: np.ndarray, entry: int) -> np.ndarray:
    """Plain area downscale of the 128 px crop to the entry size."""
    return cv2.resize(hr, (entry, entry), interpolation=cv2.INTER_AREA)


def _misalign(hr: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator) -> np.ndarray:
    n = hr.shape[0]
    ang = rng.uniform(-cfg.rotate, cfg.rotate)
    sc = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
    m = cv2.getRotationMatrix2D((n / 2, n / 2), ang, sc)
    m[:, 2] += rng.uniform(-cfg.shift, cfg.shift, size=2)
    return cv2.warpAffine(hr, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    """A line `length` px long at `angle`, centred on the kernel, so blurring never moves the face (an
    off-centre line shifts every motion-blurred input, and a generator trained on it learns to move faces)."""
    size = int(np.ceil(length)) * 2 + 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = np.cos(np.deg2rad(angle)) * length / 2, np.sin(np.deg2rad(angle)) * length / 2
    q = 4  # cv2.line's fixed point: shift=2 gives coordinates in quarter pixels
    a, b = (int(round((c - dx) * q)), int(round((c - dy) * q))), (int(round((c + dx) * q)), int(round((c + dy) * q)))
    cv2.line(k, a, b, 1.0, 1, shift=2)
    if k.sum() == 0:
        k[c, c] = 1
    return k / k.sum()


def h264_roundtrip(img: np.ndarray, crf: int) -> np.ndarray:
    """Encode one BGR frame with libx264 (intra) and decode it back (needs even sides)."""
    import av

    from ...core.yuv import from_bgr, to_bgr

    h, w = img.shape[:2]
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
    frame = from_bgr(img)
    packets = list(enc.encode(frame)) + list(enc.encode(None))
    dec = av.CodecContext.create("h264", "r")
    out = None
    for p in packets:
        for f in dec.decode(p):
            out = to_bgr(f)
    for f in dec.decode(None):
        out = to_bgr(f)
    return img if out is None else out


def degrade(hr: np.ndarray, entry: int, rng: np.random.Generator, cfg: DegradeConfig | None = None) -> np.ndarray:
    """One random degradation of a 128 px uint8 crop (BGR or RGB, channel order kept) to entry×entry."""
    cfg = cfg or DegradeConfig()
    if rng.random() < cfg.p_clean:
        return clean(hr, entry)
    img = hr
    if rng.random() < cfg.p_misalign:
        img = _misalign(img, cfg, rng)
    f = hr.shape[0] / entry  # HR pixels per LR pixel
    img = img.astype(np.float32)
    if rng.random() < cfg.p_blur:
        s = rng.uniform(*cfg.blur_sigma) * f
        img = cv2.GaussianBlur(img, (0, 0), s)
    if rng.random() < cfg.p_motion:
        img = cv2.filter2D(img, -1, _motion_kernel(rng.uniform(*cfg.motion_len) * f, rng.uniform(0, 180)))
    interp = [cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC][rng.integers(3)]
    if interp != cv2.INTER_AREA:  # a camera integrates light over its pixels: pre-filter a little anyway
        img = cv2.GaussianBlur(img, (0, 0), 0.35 * f)
    lr = cv2.resize(img, (entry, entry), interpolation=interp)
    if rng.random() < cfg.p_noise:
        s = rng.uniform(*cfg.noise_sigma)
        if rng.random() < 0.5:  # luminance noise
            lr = lr + rng.normal(0, s, size=lr.shape[:2] + (1,)).astype(np.float32)
        else:
            lr = lr + rng.normal(0, s, size=lr.shape).astype(np.float32)
    lr = np.clip(lr, 0, 255).round().astype(np.uint8)
    u = rng.random()
    if u < cfg.p_jpeg:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", lr, [cv2.IMWRITE_JPEG_QUALITY, q])
        lr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    elif u < cfg.p_jpeg + cfg.p_h264:
        lr = h264_roundtrip(lr, int(rng.integers(cfg.h264_crf[0], cfg.h264_crf[1] + 1)))
    return lr
