"""Interlaced video (analogue CCTV, DVR exports): fields woven into one frame are made whole before detection."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline.core.config import SourceConfig  # noqa: E402
from pipeline.io.sources import open_source  # noqa: E402
from support import media  # noqa: E402
from support.paths import IMAGES, needs_shared  # noqa: E402


def frames_of(path: Path, deinterlace: bool | str) -> list:
    with open_source(str(path), SourceConfig(deinterlace=deinterlace)) as src:
        return list(src)


def combing(image: np.ndarray) -> float:
    """Mean |row − next row| against mean |row − the row after next|: about 1 on a smooth picture, far above
    it where two fields 1/50 s apart alternate."""
    g = image.astype(np.float32).mean(2)
    return float(np.abs(g[1:-1] - g[:-2]).mean() / (np.abs(g[2:] - g[:-2]).mean() / 2 + 1e-6))


@needs_shared
def test_interlaced_faces_are_found_once_the_fields_are_made_whole(tmp_path, detector):
    """A real face (about 24 px) moving 5 px a field in an interlaced clip: combed, the detector finds it in
    almost no frame; deinterlaced (the default, `auto`), in nearly every one, at the same times."""
    photo = cv2.imread(str(IMAGES / "obama_small.jpg"))
    face = cv2.resize(photo, (64, 48), interpolation=cv2.INTER_AREA)
    clip = media.make_interlaced(tmp_path / "dvr.mp4", face)
    combed, whole = frames_of(clip, False), frames_of(clip, "auto")
    assert len(whole) == len(combed) == 50
    assert [f.time for f in whole] == [f.time for f in combed]
    region = (slice(170, 260), slice(100, 600))
    assert np.median([combing(f.image[region]) for f in combed]) > 1.5
    assert np.median([combing(f.image[region]) for f in whole]) < 1.2
    found_combed = sum(bool(detector(f.image)) for f in combed)
    found_whole = sum(bool(detector(f.image)) for f in whole)
    assert found_whole >= 45 and found_combed <= 10, (found_whole, found_combed)


def test_progressive_video_is_left_alone_by_auto(tmp_path):
    """`auto` touches only frames the stream flags as interlaced: a progressive clip comes out bit for bit."""
    clip = media.make_video(tmp_path / "p.mp4", frames=12, size=(64, 48))
    auto, off = frames_of(clip, "auto"), frames_of(clip, False)
    assert len(auto) == len(off) == 12
    assert all(np.array_equal(a.image, b.image) for a, b in zip(auto, off))
    forced = frames_of(clip, True)  # every frame through the filter: same frames, order and times
    assert [media.read_index(f.image) for f in forced] == list(range(12))
    assert [f.time for f in forced] == [f.time for f in off]


def test_deinterlacing_keeps_rotation(tmp_path):
    """A phone-style rotation tag still applies to frames that went through the filter."""
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("PyAV cannot write display rotation")
    face = np.full((20, 20, 3), 200, np.uint8)
    clip = media.make_interlaced(tmp_path / "r.mp4", face, frames=6, size=(160, 96), rotate=90)
    frames = frames_of(clip, "auto")
    assert len(frames) == 6 and frames[0].image.shape[:2] == (160, 96)
