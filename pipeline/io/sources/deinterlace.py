"""Interlaced video made whole before anything looks at it (`source.deinterlace`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from fractions import Fraction

import av
import av.error
import av.filter


class Deinterlacer:
    """Frames → (frame, (pts, dts, rotation)) with interlaced frames made whole by FFmpeg's bwdif.

    Analogue CCTV and many DVR exports (720×576i, 704×480i) store two fields 1/50 s apart in one frame; where a
    face moves, its rows alternate between the two moments ("combing"), which the detector and the generator
    never saw. bwdif makes each frame from its first field, the other field interpolated from it and its
    neighbours in time (`send_frame`: one frame out per frame in, a frame's delay). `auto` treats only the
    frames the stream flags as interlaced; true every frame (streams coded progressive with combing in them).
    """

    def __init__(self, stream: av.video.stream.VideoStream, mode: bool | str) -> None:
        self.stream, self.mode = stream, mode
        self._graph: av.filter.Graph | None = None
        self._shape: tuple | None = None  # the frame size and format the graph was built for

    def __call__(self, frames: Iterator[av.VideoFrame]) -> Iterator[tuple[av.VideoFrame, tuple]]:
        waiting: deque[tuple] = deque()  # pts, dts and rotation of the frames the filter holds (it drops dts)
        for frame in frames:
            props = (frame.pts, frame.dts, getattr(frame, "rotation", 0))
            if self._graph is None and (self.mode is False or (self.mode == "auto" and not frame.interlaced_frame)):
                yield frame, props
                continue
            shape = (frame.width, frame.height, frame.format.name)
            if self._graph is not None and shape != self._shape:  # a stream that changes size: flush, rebuild
                self._graph.vpush(None)
                yield from self._pull(waiting)
                self._graph = None
            if self._graph is None:
                self._graph, self._shape = self._build(frame), shape
            waiting.append(props)
            self._graph.vpush(frame)
            yield from self._pull(waiting)
        if self._graph is not None:
            self._graph.vpush(None)
            yield from self._pull(waiting)

    def _build(self, frame: av.VideoFrame) -> av.filter.Graph:
        graph = av.filter.Graph()
        src = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                               time_base=self.stream.time_base or Fraction(1, 90000))
        deint = "interlaced" if self.mode == "auto" else "all"
        bwdif = graph.add("bwdif", f"mode=send_frame:parity=auto:deint={deint}")
        sink = graph.add("buffersink")
        src.link_to(bwdif)
        bwdif.link_to(sink)
        graph.configure()
        return graph

    def _pull(self, waiting: deque) -> Iterator[tuple[av.VideoFrame, tuple]]:
        while waiting:
            try:
                out = self._graph.vpull()
            except (BlockingIOError, av.error.EOFError):
                return
            yield out, waiting.popleft()
