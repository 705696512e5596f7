"""A folder of still images, or one picture, played as a stream at `source.image_fps`.

A picture's size is read from its header before it is decoded: one over the pixel budget
(`source.max_pixels`) is refused (a single picture) or skipped and counted (in a folder) without ever
holding its pixels, so a small file declaring 20000x20000 costs nothing.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ...core.config import SourceConfig
from ...core.errors import InputError
from ...core.types import Frame
from .base import Source, check_pixels

_BOMB = re.compile(r"\((\d+) pixels\)")  # Pillow's DecompressionBombError names the picture's pixel count


def picture_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the picture's header, without decoding it; None if Pillow cannot tell.

    Pillow refuses to even open a picture of more than twice its own limit; its message still gives the
    pixel count, returned then as (pixels, 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                return im.size
        except Image.DecompressionBombError as e:
            return _header_size(path) or _bomb_size(e)
        except (OSError, ValueError, SyntaxError):  # not a picture Pillow reads: OpenCV says so when it tries
            return None


def natural_key(name: str) -> list[int | str]:
    """`img2` before `img10`, as a person would sort them."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _header_size(path: Path) -> tuple[int, int] | None:
    """The size as the format's own reader (Pillow's registered plugins) parses it from the header, without
    `Image.open`'s bomb check, which refuses to say how big the picture is."""
    try:
        with open(path, "rb") as f:
            prefix = f.read(16)
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                if accept is None or accept(prefix):
                    f.seek(0)
                    try:
                        return factory(f, str(path)).size
                    except (OSError, ValueError, SyntaxError):
                        continue
    except (OSError, AttributeError, KeyError):  # unreadable, or a Pillow without these registries
        pass
    return None


def _bomb_size(e: Exception) -> tuple[int, int]:
    m = _BOMB.search(str(e))
    return (int(m[1]), 1) if m else (2 * (Image.MAX_IMAGE_PIXELS or 0) + 1, 1)


class ImageSource(Source):
    """A folder of still images (natural name order) or a single picture, played at `cfg.image_fps`."""

    live = False

    def __init__(self, paths: list[Path], cfg: SourceConfig, name: str, uri: str) -> None:
        super().__init__()
        self.cfg = cfg
        self.name, self.uri = name, uri
        self.fps = float(cfg.image_fps)
        self.time_base = Fraction(1) / Fraction(cfg.image_fps).limit_denominator(1_000_000)
        self._paths = list(paths)
        self.frame_count = self.frames_expected = len(self._paths)
        self.duration = self.frame_count / self.fps
        # Read until the first good picture now: it gives width/height and proves there is something to show.
        self._first: tuple[int, np.ndarray] | None = None
        for i, p in enumerate(self._paths):
            image = self._read(p)
            if image is not None:
                self._first = (i, image)
                break
        if self._first is None:
            why = f" ({self.errors[0]})" if self.errors else ""
            raise InputError(f"no readable images in {uri}{why}")
        self.height, self.width = self._first[1].shape[:2]
        self._start = self._first[0]
        self._closed = False

    def _read(self, path: Path) -> np.ndarray | None:
        """Decode one picture (EXIF orientation applied by OpenCV); None, counted, if it cannot be read or is
        over the pixel budget (a single picture over it is an InputError)."""
        size = picture_size(path)
        if size is not None:
            w, h = size
            shown = f"{w}x{h} px" if h > 1 else f"{w} px"
            try:
                check_pixels(str(path) if len(self._paths) == 1 else path.name, w, h, self.cfg.max_pixels)
            except InputError as e:
                if len(self._paths) == 1:
                    raise InputError(str(e).replace(f"{w}x{h} px", shown), permanent=True) from None
                self._skip(str(e).replace(f"{w}x{h} px", shown))
                return None
        try:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error as e:  # pragma: no cover - OpenCV usually returns None instead
            image, why = None, str(e).splitlines()[-1]
        else:
            why = "not a readable image"
        if image is None:
            self._skip(f"{path.name}: {why}")
        return image

    def __iter__(self) -> Iterator[Frame]:
        limit = self.cfg.max_frames or None
        delivered = 0
        start, first = self._first if self._first is not None else (len(self._paths), None)
        self._first = None  # one pass; drop the cached picture as soon as it is handed out
        for i in range(start, len(self._paths)):
            if self._closed or (limit is not None and delivered >= limit):
                return
            image = first if i == start and first is not None else self._read(self._paths[i])
            if image is None:
                continue
            yield Frame(image=image, index=delivered, time=delivered / self.fps, source=self.name, pts=delivered)
            delivered += 1

    def close(self) -> None:
        self._closed = True
        self._first = None
