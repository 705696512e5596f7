"""The `Source` interface every kind of input implements: an iterable of upright BGR `Frame`s plus what a
manifest needs to know about where they came from."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import TracebackType

from ...core.errors import InputError
from ...core.types import Frame
from ..events import Event

MAX_ERRORS = 20  # how many skip descriptions a source keeps (the count in `skipped` is exact)
# A running source holds a decoder, an encoder's look-ahead, its open tracks and the detector's working memory
# for its frame size: about MEMORY_PER_SOURCE plus MEMORY_PER_PIXEL for every pixel of its frames, on top of
# the shared models (docs/robustness.md gives what 1080p, 4K and 8K cost).
MEMORY_PER_SOURCE = 512 << 20  # at least
MEMORY_PER_PIXEL = 360  # bytes per pixel of the source's frame, above that
LARGE_FRAME = 3840 * 2160  # above 4K a source's memory need is worth a warning


def frame_memory(width: int, height: int) -> int:
    """Bytes of memory one running source of `width` x `height` frames needs (an estimate)."""
    return MEMORY_PER_SOURCE + MEMORY_PER_PIXEL * width * height


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def check_pixels(what: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse a frame over the pixel budget (`source.max_pixels`, 0: none) before it is decoded: one line
    naming `what`, its size and the memory it would need."""
    if max_pixels and width * height > max_pixels:
        raise InputError(
            f"{what}: {width}x{height} px ({width * height / 1e6:.1f} MP) is over source.max_pixels "
            f"({max_pixels / 1e6:.1f} MP); processing it would need about {gigabytes(frame_memory(width, height))} "
            "of memory (raise source.max_pixels, 0 = no limit, to try)",
            f"{width}x{height} px frames are over source.max_pixels", permanent=True)


def no_event(event: Event) -> None:
    """The default `on_event`: ignore."""


@dataclass(frozen=True)
class Target:
    """What a video source opens and how it is shown: `url` as FFmpeg gets it (credentials filled in), the
    `name` and `uri` shown (redacted), the demuxer and its options, and the secrets scrubbed from errors."""

    url: str
    name: str
    uri: str
    format: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()


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
