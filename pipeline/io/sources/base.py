"""The `Source` interface every kind of input implements: an iterable of upright BGR `Frame`s plus what a
manifest needs to know about where they came from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from types import TracebackType

from ...core.types import Frame
from ..events import Event

MAX_ERRORS = 20  # how many skip descriptions a source keeps (the count in `skipped` is exact)


def no_event(event: Event) -> None:
    """The default `on_event`: ignore."""


class Source:
    """Iterate once; frames are decoded on demand. Use as a context manager (or call `close`)."""

    name: str
    uri: str
    fps: float
    width: int
    height: int
    frame_count: int | None
    duration: float | None
    live: bool
    time_base: Fraction | None
    frames_expected: int | None = None  # what the container's index (or the folder) says is there; None: unknown

    def __init__(self) -> None:
        self.skipped = 0
        self.errors: list[str] = []
        self.dropped = 0  # live: frames dropped because the consumer fell behind (files never drop)
        self.generation = 0  # live: connection generation, +1 at every reconnect (= Frame.segment)
        self.reconnects = 0
        self.on_event: Callable[[Event], None] = no_event  # live: disconnect/reconnect/dropped events

    def _skip(self, what: str) -> None:
        """Count one undecodable frame/packet/image and keep its description (bounded)."""
        self.skipped += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(what)

    def _note(self, what: str) -> None:
        """Record why decoding stopped (always kept, as the last entry) without counting a skipped frame."""
        if len(self.errors) >= MAX_ERRORS:
            self.errors.pop()
        self.errors.append(what)

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the decoder and file/socket; safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, {self.width}x{self.height}, fps={self.fps:.3f}, "
            f"frames={self.frame_count}, live={self.live})"
        )
