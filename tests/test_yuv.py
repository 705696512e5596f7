"""`pipeline.core.yuv`: frames read and written by the package keep a face's colours (no swscale darkening)."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pipeline.core.yuv import from_bgr, to_bgr  # noqa: E402
from pipeline.io.sources import open_source  # noqa: E402
from support.paths import IMAGES, require  # noqa: E402


def photo(size: tuple[int, int] = (640, 360)) -> np.ndarray:
    require(IMAGES / "obama_1.jpg")
    return cv2.resize(cv2.imread(str(IMAGES / "obama_1.jpg")), size, interpolation=cv2.INTER_AREA)


def shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean colour of `b` minus that of `a`, per B/G/R channel, in levels."""
    return b.reshape(-1, 3).astype(float).mean(0) - a.reshape(-1, 3).astype(float).mean(0)


def bt601(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The standard's arithmetic: BT.601 limited-range Y, Cb, Cr in float, chroma averaged over 2×2 blocks."""
    b, g, r = (bgr[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    box = lambda c: c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2).mean((1, 3))  # noqa: E731
    return y, box(cb), box(cr)


def test_a_photo_comes_back_from_yuv420p_with_its_colours():
    """bgr24 → yuv420p → bgr24 keeps the mean colour to 0.2 levels; swscale's default path, which the package
    used before, loses 1–3 (the same photo, the same conversion otherwise)."""
    img = photo()
    back = to_bgr(from_bgr(img))
    assert back.shape == img.shape and cv2.PSNR(back, img) > 30
    assert np.abs(shift(img, back)).max() < 0.2, shift(img, back)
    plain = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p").to_ndarray(format="bgr24")
    assert (shift(img, plain) < -0.5).all()  # what the flags are for


def test_the_encoder_s_planes_are_the_standard_s_arithmetic():
    """`from_bgr` writes BT.601 limited-range planes (and tags them so) matching the float formula on average."""
    img = photo()
    frame = from_bgr(img)
    assert frame.format.name == "yuv420p" and (frame.colorspace, frame.color_range) == (6, 1)
    h = img.shape[0]
    a = frame.to_ndarray().astype(float)
    planes = a[:h], a[h:h + h // 4].reshape(h // 2, -1), a[h + h // 4:].reshape(h // 2, -1)
    for got, want in zip(planes, bt601(img)):
        assert abs((got - want).mean()) < 0.1 and np.abs(got - want).mean() < 1.0


def test_a_recording_decodes_to_its_camera_s_colours(tmp_path: Path):
    """A losslessly coded yuv420p file of a real photo, read by the product's own source, has the photo's mean
    colour to 0.2 levels (swscale's default decode put it 0.9–1.4 levels darker)."""
    img = photo()
    path = tmp_path / "still.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = img.shape[1], img.shape[0], "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for i in range(3):
            frame = from_bgr(img)
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with open_source(str(path)) as src:
        frames = [f.image for f in src]
    assert len(frames) == 3
    for image in frames:
        assert np.abs(shift(img, image)).max() < 0.2, shift(img, image)


@pytest.mark.parametrize("space", ["ITU709", "ITU601"])
def test_the_stream_s_colour_matrix_is_honoured(space: str):
    """A frame tagged BT.709 is read through BT.709 (HD cameras), one tagged BT.601 through BT.601: a saturated
    colour comes back within 2 levels either way, where the other matrix would move it by 14."""
    from av.video.reformatter import ColorRange, Colorspace

    patch = np.zeros((64, 64, 3), np.uint8)
    patch[:] = (40, 60, 200)  # a saturated red-orange (BGR)
    frame = av.VideoFrame.from_ndarray(patch, format="bgr24").reformat(
        format="yuv420p", dst_colorspace=Colorspace[space], dst_color_range=ColorRange.MPEG)
    assert np.abs(to_bgr(frame).astype(int) - patch).max() <= 2
