"""Decode ahead of the frame loop: a recording's next frames are decoded in a helper thread while the
current one is detected, tracked and drawn.

FFmpeg's decoder and swscale's colour conversion run without Python's lock, so they use the core the
detector leaves idle between its runs; the loop then waits only for what is not ready yet (the "decode"
stage of a run's timings). A live camera needs none of this: `LiveSource` already reads in its own thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ...core.types import Frame

READ_AHEAD = 4  # frames decoded ahead: enough to cover one slow step, a few MB at 1080p
POLL_S = 0.1  # how often a helper blocked on a full queue looks whether it was told to stop


@dataclass(frozen=True)
class _Failed:
    """What the helper ran into, handed over to be raised in the loop's thread."""

    error: BaseException


_END = object()


class ReadAhead:
    """Iterate `frames` in a helper thread, at most `depth` frames ahead; `close` stops and joins it, so the
    source can be closed safely afterwards. Iterate once."""

    def __init__(self, frames: Iterable[Frame], name: str, depth: int = READ_AHEAD) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(frames,), name=f"read-ahead {name}", daemon=True)
        self._thread.start()

    def _run(self, frames: Iterable[Frame]) -> None:
        try:
            for frame in frames:
                if not self._put(frame):
                    return
        except BaseException as e:  # raised again in the loop's thread, where it can be reported
            self._put(_Failed(e))
            return
        self._put(_END)

    def _put(self, item: object) -> bool:
        """Hand one item over; False once told to stop."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    def close(self) -> None:
        """Stop decoding and wait for the helper (at most one frame's decode); safe to call twice."""
        self._stop.set()
        self._thread.join()
