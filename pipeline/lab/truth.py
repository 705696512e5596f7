"""Camera-sized copies of high-resolution video, and the exact geometry that links the two.

Real-video fidelity is measured (and video training data made) by shrinking a high-resolution clip the
way a camera's sensor would (area averaging), placing it in a CCTV-sized frame and encoding it as a
camera does. Every crop the pipeline cuts from the low-res frame (a source → 128 crop matrix) can then be
cut from the high-resolution frame too, through `Shrink.truth_matrix`: that is the face the camera never
recorded. Pixel centres map as FFmpeg's and OpenCV's area scalers map them:
x_lr = (x_hr + 0.5) / s − 0.5 + offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from ..core.geometry import CROP, resize_matrix
from ..stages.align import warp

CCTV_FRAME = (640, 360)  # the frame a shrunk clip is padded into, as a small camera delivers
PAD_VALUE = 110  # grey around the shrunk picture; the truth takes it outside the high-res frame


def compose(m: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The 2×3 affine `m ∘ a` (apply a, then m)."""
    m, a = np.asarray(m, np.float64), np.asarray(a, np.float64)
    out = m[:, :2] @ a[:, :2]
    return np.hstack([out, (m[:, :2] @ a[:, 2] + m[:, 2])[:, None]])


@dataclass(frozen=True)
class Shrink:
    """High-res frame (w×h) → camera frame: area-shrunk to lw×lh and placed at (ox, oy) in a fw×fh frame."""

    w: int
    h: int
    lw: int
    lh: int
    ox: int
    oy: int
    fw: int
    fh: int
    pad: int = PAD_VALUE

    @property
    def scale(self) -> tuple[float, float]:
        """High-res pixels per low-res pixel, per axis."""
        return self.w / self.lw, self.h / self.lh

    def hr_to_lr(self) -> np.ndarray:
        """2×3 affine from high-res pixel coordinates to camera-frame pixel coordinates (pixel centres)."""
        sx, sy = self.scale
        return np.array([[1 / sx, 0, 0.5 / sx - 0.5 + self.ox], [0, 1 / sy, 0.5 / sy - 0.5 + self.oy]])

    def apply(self, hr: np.ndarray, blur_sigma: float = 0.0) -> np.ndarray:
        """The camera frame of one high-res frame (optional sensor/optics blur in low-res pixels, before sampling)."""
        img = hr
        if blur_sigma > 0:
            sx, sy = self.scale
            img = cv2.GaussianBlur(hr, (0, 0), sigmaX=blur_sigma * sx, sigmaY=blur_sigma * sy)
        small = cv2.resize(img, (self.lw, self.lh), interpolation=cv2.INTER_AREA)
        frame = np.full((self.fh, self.fw, 3), self.pad, np.uint8)
        frame[self.oy : self.oy + self.lh, self.ox : self.ox + self.lw] = small
        return frame

    def truth_matrix(self, m_lr: np.ndarray) -> np.ndarray:
        """A camera-frame → crop matrix re-expressed for the high-res frame."""
        return compose(m_lr, self.hr_to_lr())

    def truth(self, hr: np.ndarray, m_lr: np.ndarray, size: int = CROP) -> np.ndarray:
        """The crop the pipeline cut through `m_lr`, cut from the high-res frame instead (area-averaged)."""
        return warp(hr, self.truth_matrix(m_lr), size, border_value=self.pad)


def plan_shrink(w: int, h: int, face_h: float, face_px: float, frame: tuple[int, int] = CCTV_FRAME,
                center: tuple[float, float] = (0.5, 0.5), pad: int = PAD_VALUE) -> Shrink:
    """Shrink a w×h clip whose face is `face_h` px tall so the face is `face_px` tall, placed in `frame`.

    The offset is even (yuv420p chroma sits on 2×2 blocks); `center` places the picture's centre as a
    fraction of the frame. A picture larger than the frame is refused.
    """
    s = face_h / face_px
    lw, lh = max(1, round(w / s)), max(1, round(h / s))
    fw, fh = frame
    if lw > fw or lh > fh:
        raise ValueError(f"{w}x{h} shrunk to {lw}x{lh} does not fit a {fw}x{fh} frame")
    ox = int(np.clip(round(center[0] * fw - lw / 2), 0, fw - lw)) // 2 * 2
    oy = int(np.clip(round(center[1] * fh - lh / 2), 0, fh - lh)) // 2 * 2
    return Shrink(w, h, lw, lh, ox, oy, fw, fh, pad)


def bicubic_crop(frame: np.ndarray, m: np.ndarray, size: int = CROP) -> np.ndarray:
    """The baseline: the camera frame resampled straight into the crop with bicubic interpolation."""
    return cv2.warpAffine(frame, resize_matrix(m, size), (size, size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame of a video as BGR uint8, in decode order (the pipeline's frame indices)."""
    import av

    from ..core.yuv import to_bgr

    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            yield to_bgr(frame)


def yuv420_round_trip(frame: np.ndarray) -> np.ndarray:
    """`frame` through the colour conversions `encode` and `read_frames` make (bgr24 → yuv420p → bgr24)
    without the codec between them: what the simulated camera loses to chroma subsampling alone."""
    from ..core.yuv import from_bgr, to_bgr

    return to_bgr(from_bgr(frame))


def video_rate(path: str | Path) -> Fraction:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return Fraction(s.average_rate or s.guessed_rate or 25)


def encode(frames: Iterable[np.ndarray], path: str | Path, rate: Fraction, crf: int = 26, codec: str = "libx264",
           gop: int | None = None, preset: str = "medium") -> int:
    """Encode BGR frames as a camera would (yuv420p, constant-quality CRF); returns the frame count."""
    import av

    from ..core.yuv import from_bgr

    n = 0
    with av.open(str(path), "w") as out:
        stream = None
        for img in frames:
            if stream is None:
                stream = out.add_stream(codec, rate=rate)
                stream.width, stream.height, stream.pix_fmt = img.shape[1], img.shape[0], "yuv420p"
                opts = {"crf": str(crf), "preset": preset}
                if codec == "libx265":
                    opts["x265-params"] = "log-level=error"
                stream.options = opts
                if gop:
                    stream.codec_context.gop_size = gop
            frame = from_bgr(img)
            frame.pts = n
            frame.time_base = 1 / Fraction(rate)
            out.mux(stream.encode(frame))
            n += 1
        if stream is not None:
            out.mux(stream.encode(None))
    return n
