"""A folder of still images, or one picture, played as a stream at `source.image_fps`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ...core.config import SourceConfig
from ...core.errors import InputError
from ...core.types import Frame
from .base import Source


def natural_key(name: str) -> list[int | str]:
    """`img2` before `img10`, as a person would sort them."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


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
            raise InputError(f"no readable images in {uri}")
        self.height, self.width = self._first[1].shape[:2]
        self._start = self._first[0]
        self._closed = False

    def _read(self, path: Path) -> np.ndarray | None:
        """Decode one picture (EXIF orientation applied by OpenCV); None, counted, if it cannot be read."""
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
