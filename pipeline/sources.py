"""Sources: turn a file, an image folder, a camera URL or a webcam into a stream of upright `Frame`s.

`open_source(spec)` probes by content, not by extension, and fails early with a one-line
`InputError` naming the problem and the path. Decoding is streamed (bounded memory), only the
video stream is demuxed (a broken audio track never stops the video), rotation metadata is
applied, and times come from each frame's PTS so variable-frame-rate recordings keep their clock.
Damaged files yield every frame that can be decoded; what was skipped is counted, not raised.

Live feeds (rtsp/rtsps/http(s)/... cameras, `/dev/videoN`) are read by a background thread into a small
queue that drops the oldest frame when the consumer falls behind, and reconnect with exponential backoff
and jitter when the feed errors, ends or stalls; their frames carry wall-clock times that keep increasing
across reconnects, the capture time for latency, and the connection generation (`Frame.segment`).
Credentials never appear in names, messages or events; `${VAR}` in a URL is filled from the environment.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av
import av.error
import cv2
import numpy as np

from .config import SourceConfig
from .errors import InputError
from .types import Frame

__all__ = ["IMAGE_EXTENSIONS", "ImageSource", "LiveSource", "Source", "VideoSource", "open_source", "redact"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "srt", "udp", "tcp")
MAX_ERRORS = 20  # how many skip descriptions a source keeps (the count in `skipped` is exact)
MAX_CONSECUTIVE_FAILURES = 1000  # a file this broken is given up on rather than scanned to the end
DEFAULT_FPS = 25.0
DROP_REPORT_S = 1.0  # at most one "dropped" event per this many seconds
CLOSE_JOIN_S = 1.5  # how long close() waits for a live reader thread blocked inside FFmpeg
MAX_EVENTS = 1000  # events waiting for the consumer (older ones are discarded beyond this)
MIN_BACKOFF_S = 0.05  # even reconnect_initial_s=0 must not spin on a refused connection

# Live-feed settings and their defaults, read with getattr so an older SourceConfig still works.
LIVE_DEFAULTS = {
    "live_queue": 8,  # frames buffered between the reader thread and the consumer; the oldest is dropped
    "reconnect_initial_s": 0.5,  # first backoff delay; doubles per failed attempt
    "reconnect_max_s": 10.0,  # backoff ceiling
    "reconnect_attempts": 0,  # attempts per outage before a live source gives up; 0 = forever
    "reconnect_attempts_at_start": 3,  # attempts to open a live source before open_source raises
}

# Leading bytes of still images: a single picture is read with OpenCV, everything else with FFmpeg.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*")
_CREDENTIALS = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@")  # up to the last @ of the authority


_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def redact(uri: str) -> str:
    """Hide `user:pass@` in a URL so it can be logged, shown and written to manifests."""
    return _CREDENTIALS.sub(r"\1***@", uri)


def _live_setting(cfg: SourceConfig, name: str) -> float:
    return getattr(cfg, name, LIVE_DEFAULTS[name])


def _expand_env(spec: str, shown: str) -> tuple[str, list[str]]:
    """Fill `${VAR}` placeholders from the environment; returns the URL and the values used (secrets).

    A missing variable is an `InputError` naming the variable, never a value.
    """
    values: list[str] = []

    def fill(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise InputError(f"environment variable {m.group(1)} is not set (used in {shown})")
        values.append(value)
        return value

    return _ENV_VAR.sub(fill, spec), values


def _userinfo(uri: str) -> list[str]:
    """The user name and password written in a URL (to scrub them from error text)."""
    m = _CREDENTIALS.match(uri)
    if not m:
        return []
    info = uri[len(m.group(1)) : m.end() - 1]
    user, _, password = info.partition(":")
    return [info, user, password]


def _scrub(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret (3+ characters; longest first) by *** in a message."""
    for s in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def _natural_key(name: str) -> list[int | str]:
    """`img2` before `img10`, as a person would sort them."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate counter-clockwise by a multiple of 90° (FFmpeg's display-matrix convention)."""
    k = round(degrees / 90) % 4
    if k == 1:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if k == 2:
        return cv2.rotate(image, cv2.ROTATE_180)
    if k == 3:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


def _reason(e: BaseException, *secrets: str) -> str:
    """A short, credential-free reason for an FFmpeg/OS error (its str() repeats the full URL)."""
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    for s in secrets:
        if s:
            text = text.replace(s, redact(s))
    return redact(" ".join(str(text).split()))


class _BestEffortClock:
    """FFmpeg's `guess_correct_pts`: trust pts unless it has gone backwards more often than dts.

    AVI files with packed B-frames (DivX/Xvid, e.g. MPEG-4 Part 2) report reordered pts but good dts.
    """

    def __init__(self) -> None:
        self.faulty_pts = self.faulty_dts = 0
        self.last_pts: int | None = None
        self.last_dts: int | None = None

    def best_effort(self, pts: int | None, dts: int | None) -> int | None:
        if dts is not None:
            self.faulty_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        if pts is not None:
            self.faulty_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        if pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None):
            return pts
        return dts


class Source:
    """An iterable of upright BGR `Frame`s with what a manifest needs to know about where they came from.

    Iterate once; frames are decoded on demand. Use as a context manager (or call `close`).
    """

    name: str
    uri: str
    fps: float
    width: int
    height: int
    frame_count: int | None
    duration: float | None
    live: bool
    time_base: Fraction | None

    def __init__(self) -> None:
        self.skipped = 0
        self.errors: list[str] = []
        self.dropped = 0  # live: frames dropped because the consumer fell behind (files never drop)
        self.generation = 0  # live: connection generation, +1 at every reconnect (= Frame.segment)
        self.reconnects = 0
        self.on_event: Callable[[dict], None] = _no_event  # live: disconnect/reconnect/dropped events

    def _skip(self, what: str) -> None:
        """Count one undecodable frame/packet/image and keep its description (bounded)."""
        self.skipped += 1
        if len(self.errors) < MAX_ERRORS:
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


def _no_event(event: dict) -> None:
    """The default `on_event`: ignore."""


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
        self.frame_count = len(self._paths)
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


class VideoSource(Source):
    """Anything FFmpeg can demux: files, RTSP/HTTP cameras, webcams. Decodes only the video stream."""

    def __init__(
        self,
        target: str,
        cfg: SourceConfig,
        name: str,
        uri: str,
        live: bool,
        format: str | None = None,
        options: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.name, self.uri, self.live = name, uri, live
        self._target = target
        self._secrets = tuple(secrets)
        self.stop_reason: str | None = None  # live: why the stream ended (read error, end of stream)
        self._opening = True  # which timeout an interrupted call ran into
        timeout = (cfg.open_timeout_s, cfg.read_timeout_s) if live else None
        try:
            self._container = av.open(
                target, mode="r", format=format, options=dict(options or {}), timeout=timeout
            )
        except (av.error.FFmpegError, OSError) as e:
            what = "cannot open" if live else "not a media file or unsupported format"
            reason = self._why(e)
            error = InputError(f"{what} {uri}: {reason}")
            error.reason = reason  # type: ignore[attr-defined]
            # a wrong password or path does not fix itself: no point retrying
            error.permanent = isinstance(  # type: ignore[attr-defined]
                e, (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError, av.error.HTTPNotFoundError)
            )
            raise error from None
        self._opening = False
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        container = self._container
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            error = InputError(f"no video stream in {self.uri} ({kinds})")
            error.reason, error.permanent = f"no video stream ({kinds})", True  # type: ignore[attr-defined]
            raise error
        stream = container.streams.video[0]
        self._stream = stream
        # Everything else is dropped by the demuxer itself, so a broken audio track is never even parsed.
        discard_all = getattr(getattr(av.stream, "Discard", None), "all", None)
        for other in container.streams:
            if other.index != stream.index and discard_all is not None:
                other.discard = discard_all
        cc = stream.codec_context
        cc.thread_type = "AUTO"
        if self.cfg.threads > 0:
            cc.thread_count = self.cfg.threads

        self.time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else DEFAULT_FPS
        self._start_pts = stream.start_time if (stream.start_time is not None and not self.live) else None
        if self.live:
            self.duration, self.frame_count = None, None
        else:
            if stream.duration and stream.time_base:
                self.duration = float(stream.duration * stream.time_base)
            elif container.duration:
                self.duration = container.duration / av.time_base
            else:
                self.duration = None
            if stream.frames:
                self.frame_count = int(stream.frames)
            elif self.duration:
                self.frame_count = max(1, round(self.duration * self.fps))
            else:
                self.frame_count = None
        # Legacy `rotate` tag (clockwise degrees); the display matrix on each frame takes precedence.
        try:
            self._tag_rotation = -int(float(stream.metadata.get("rotate", 0)))
        except ValueError:
            self._tag_rotation = 0

        # Decode the first frame now: it proves the content is decodable and gives the upright size.
        self._frames = self._decode()
        try:
            self._peeked: Frame | None = next(self._frames)
        except StopIteration:
            detail = f": {self.errors[0]}" if self.errors else ""
            if self.stop_reason and not detail:
                detail = f": {self.stop_reason}"
            error = InputError(f"no decodable video frames in {self.uri}{detail}")
            error.reason = f"no decodable video frames{detail}"  # type: ignore[attr-defined]
            raise error from None
        self.height, self.width = self._peeked.image.shape[:2]

    def _decode(self) -> Iterator[Frame]:
        """Demux → decode → BGR, skipping what fails; stops after too many failures in a row."""
        stream = self._stream
        limit = self.cfg.max_frames or None
        delivered = 0
        failures = 0
        first_pts: int | None = self._start_pts
        clock = _BestEffortClock()
        last_time: float | None = None
        packets = self._container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except (StopIteration, av.error.EOFError):
                self.stop_reason = "end of stream"
                return
            except (av.error.FFmpegError, OSError) as e:
                # Read errors on a live feed (timeout, peer gone) end the stream; LiveSource reconnects.
                if self.live:
                    self.stop_reason = f"read error: {self._why(e)}"
                    return
                self._skip(f"read error: {self._why(e)}")
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    if not self.live:
                        self._note(f"gave up after {failures} consecutive failures")
                    return
                packets = self._container.demux(stream)  # the old generator died with the exception
                continue
            try:
                decoded = packet.decode()
            except (av.error.FFmpegError, ValueError) as e:
                where = f" at pts {packet.pts}" if packet.pts is not None else ""
                self._skip(f"undecodable packet{where}: {self._why(e)}")
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    self._note(f"gave up after {failures} consecutive failures")
                    return
                continue
            if decoded:
                failures = 0
            for frame in decoded:
                if limit is not None and delivered >= limit:
                    return
                try:
                    image = frame.to_ndarray(format="bgr24")
                except (av.error.FFmpegError, ValueError) as e:  # pragma: no cover - odd pixel formats
                    self._skip(f"unconvertible frame at pts {frame.pts}: {_reason(e)}")
                    continue
                image = _rotate(image, getattr(frame, "rotation", 0) or self._tag_rotation)
                pts = clock.best_effort(frame.pts, frame.dts)
                if pts is not None and self.time_base is not None:
                    if first_pts is None:  # live: the clock starts at the first frame we see
                        first_pts = pts
                    time = float((pts - first_pts) * self.time_base)
                else:
                    time = delivered / self.fps
                if last_time is not None and time <= last_time:
                    time = last_time + 1e-6  # never run backwards or stand still: trackers and muxers rely on it
                last_time = time
                yield Frame(image=image, index=delivered, time=time, source=self.name, pts=pts)
                delivered += 1

    def _why(self, e: BaseException) -> str:
        """The error's reason with the URL redacted and any secret (password, `${VAR}` value) scrubbed."""
        if self.live and isinstance(e, av.error.ExitError):  # PyAV's timeout interrupts FFmpeg with AVERROR_EXIT
            if self._opening:
                return f"timed out (no answer in {self.cfg.open_timeout_s:g} s)"
            return f"timed out (no data for {self.cfg.read_timeout_s:g} s)"
        return _scrub(_reason(e, self._target), self._secrets)

    def _note(self, what: str) -> None:
        """Record why decoding stopped (always kept, as the last entry) without counting a skipped frame."""
        if len(self.errors) >= MAX_ERRORS:
            self.errors.pop()
        self.errors.append(what)

    def __iter__(self) -> Iterator[Frame]:
        if self._peeked is not None:
            first, self._peeked = self._peeked, None
            yield first
        yield from self._frames

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            self._container = None
            self._peeked = None
            frames = getattr(self, "_frames", None)
            if frames is not None:
                frames.close()
            container.close()


class LiveSource(Source):
    """A camera feed that survives its camera: reads in a background thread, drops the oldest frame when
    the consumer falls behind, and reconnects with exponential backoff and jitter when the feed fails.

    Each connection is a `VideoSource`; this class strings them together. Frames get `index` in delivery
    order, `time` = seconds since the first frame arrived (monotonic clock, so it keeps increasing across
    reconnects even though the stream's own PTS restarts), `captured` = `time.time()` at arrival, and
    `segment` = the connection generation. `pts` is the stream's own and restarts with each connection.

    Events go to `on_event(dict)`, called in the thread that iterates the source (and, for attempts while
    opening, in the thread that calls `open_source`):
    `{"event": "disconnect", "reason", "segment", "time"}`, `{"event": "reconnect", "attempt", "after_s",
    "reason", "time"}` (before each wait), `{"event": "reconnected", "attempt", "downtime_s", "segment",
    "time"}`, `{"event": "gave_up", "attempts", "reason", "time"}`, and `{"event": "dropped", "count",
    "total", "time"}` at most once per second. `time` is on the frames' clock; `wall` is `time.time()`.
    `close()` may be called from any thread (e.g. a signal handler): it ends iteration and stops the reader.
    """

    live = True

    def __init__(
        self,
        target: str,
        cfg: SourceConfig,
        name: str,
        uri: str,
        format: str | None = None,
        options: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        on_event: Callable[[dict], None] | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.name, self.uri = name, uri
        self.on_event = on_event or _no_event
        self._target, self._format, self._options = target, format, dict(options or {})
        self._secrets = tuple(secrets) + tuple(_userinfo(target))
        # each connection decodes everything; max_frames is counted here, over all connections
        self._conn_cfg = dataclasses.replace(cfg, max_frames=0) if dataclasses.is_dataclass(cfg) else cfg
        self.queue_size = max(1, int(_live_setting(cfg, "live_queue")))
        self.frame_count, self.duration = None, None
        self.received = 0  # frames that arrived (delivered + dropped + still queued)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._queue: deque[Frame] = deque()
        self._events: deque[dict] = deque(maxlen=MAX_EVENTS)
        self._finished = False
        self._failure: BaseException | None = None
        self._t0: float | None = None  # monotonic time of the first frame
        self._last_time = -1.0
        self._last_arrival: float | None = None
        self._in_thread = False  # events from the reader thread are queued for the consumer
        self._thread: threading.Thread | None = None

        conn = self._open_at_start()
        self.width, self.height, self.fps, self.time_base = conn.width, conn.height, conn.fps, conn.time_base
        self._thread = threading.Thread(target=self._run, args=(conn,), name=f"source {name}", daemon=True)
        self._in_thread = True
        self._thread.start()

    # ------------------------------------------------------------------ connections

    def _connect(self) -> VideoSource:
        return VideoSource(self._target, self._conn_cfg, self.name, self.uri, live=True, format=self._format,
                           options=self._options, secrets=self._secrets)

    def _backoff(self, attempt: int) -> float:
        """Delay before reconnect `attempt` (1-based): exponential, capped, with 50–100 % jitter."""
        first = max(MIN_BACKOFF_S, float(_live_setting(self.cfg, "reconnect_initial_s")))
        ceiling = max(first, float(_live_setting(self.cfg, "reconnect_max_s")))
        return min(ceiling, first * 2 ** min(attempt - 1, 30)) * random.uniform(0.5, 1.0)

    def _clock(self) -> float:
        return round(time.monotonic() - self._t0, 3) if self._t0 is not None else 0.0

    def _emit(self, event: dict) -> None:
        event.setdefault("time", self._clock())
        event.setdefault("wall", time.time())
        if not self._in_thread:
            self.on_event(event)
            return
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def _open_at_start(self) -> VideoSource:
        attempts = max(1, int(_live_setting(self.cfg, "reconnect_attempts_at_start")))
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._connect()
            except InputError as e:
                reason = getattr(e, "reason", None) or str(e)
                if getattr(e, "permanent", False) or attempt >= attempts or self._stop.is_set():
                    plural = "s" if attempt > 1 else ""
                    raise InputError(f"cannot open {self.uri} after {attempt} attempt{plural}: {reason}") from None
            delay = self._backoff(attempt)
            self._emit({"event": "reconnect", "attempt": attempt + 1, "after_s": round(delay, 3), "reason": reason})
            time.sleep(delay)

    def _reconnect(self, reason: str, down_since: float) -> VideoSource | None:
        """Retry until a connection delivers a frame, attempts run out (None) or the source is closed (None)."""
        limit = int(_live_setting(self.cfg, "reconnect_attempts"))
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            if limit and attempt > limit:
                self._note(f"gave up after {limit} reconnect attempts: {reason}")
                self._emit({"event": "gave_up", "attempts": limit, "reason": reason})
                return None
            delay = self._backoff(attempt)
            self._emit({"event": "reconnect", "attempt": attempt, "after_s": round(delay, 3), "reason": reason})
            if self._stop.wait(delay):
                return None
            try:
                conn = self._connect()
            except InputError as e:
                reason = getattr(e, "reason", None) or str(e)
                continue
            if self._stop.is_set():
                conn.close()
                return None
            self.generation += 1
            self.reconnects += 1
            self._emit({"event": "reconnected", "attempt": attempt, "segment": self.generation,
                        "downtime_s": round(time.monotonic() - down_since, 3)})
            return conn
        return None

    # ------------------------------------------------------------------ reader thread

    def _run(self, conn: VideoSource | None) -> None:
        try:
            while conn is not None and not self._stop.is_set():
                for frame in conn:
                    if self._stop.is_set():
                        break
                    self._put(frame)
                self._absorb(conn)
                reason = conn.stop_reason or "end of stream"
                conn.close()
                conn = None
                if self._stop.is_set():
                    break
                down_since = self._last_arrival or time.monotonic()
                self._emit({"event": "disconnect", "reason": reason, "segment": self.generation})
                conn = self._reconnect(reason, down_since)
        except BaseException as e:  # a bug, not a feed problem: hand it to the consumer
            self._failure = e
        finally:
            if conn is not None:
                conn.close()
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _absorb(self, conn: VideoSource) -> None:
        """Keep a finished connection's count of undecodable frames and their descriptions."""
        self.skipped += conn.skipped
        for e in conn.errors:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(e)

    def _put(self, frame: Frame) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        t = now - self._t0
        if t <= self._last_time:
            t = self._last_time + 1e-6
        self._last_time = t
        self._last_arrival = now
        out = Frame(image=frame.image, index=-1, time=t, source=self.name, pts=frame.pts,
                    captured=time.time(), segment=self.generation)
        with self._cond:
            self.received += 1
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(out)
            self._cond.notify_all()

    # ------------------------------------------------------------------ consumer

    def __iter__(self) -> Iterator[Frame]:
        limit = self.cfg.max_frames or None
        delivered = 0
        reported, last_report = 0, time.monotonic()
        while not self._stop.is_set() and (limit is None or delivered < limit):
            with self._cond:
                while not (self._queue or self._events or self._finished or self._stop.is_set()):
                    self._cond.wait(0.5)
                events = list(self._events)
                self._events.clear()
                frame = self._queue.popleft() if self._queue else None
                finished = self._finished and not self._queue
                dropped = self.dropped
            for event in events:
                self.on_event(event)
            now = time.monotonic()
            if dropped > reported and (now - last_report >= DROP_REPORT_S or frame is None):
                self.on_event({"event": "dropped", "count": dropped - reported, "total": dropped,
                               "time": self._clock(), "wall": time.time()})
                reported, last_report = dropped, now
            if frame is not None:
                frame.index = delivered
                delivered += 1
                yield frame
            elif finished:
                break
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """Stop the reader (interrupting a backoff wait at once) and end iteration; safe from any thread."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A read blocked inside FFmpeg cannot be interrupted; the thread closes its connection itself
            # as soon as the read returns (at most read_timeout_s later), so don't wait for it longer.
            thread.join(CLOSE_JOIN_S)
        with self._cond:
            self._queue.clear()

    def _note(self, what: str) -> None:
        if len(self.errors) >= MAX_ERRORS:
            self.errors.pop()
        self.errors.append(what)


def _network_options(spec: str, cfg: SourceConfig, options: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
    """FFmpeg options for a camera URL: RTSP over `cfg.transport` (TCP by default), socket timeouts in µs.

    A `transport=udp|tcp|http` query parameter (or `options["transport"]`) overrides it for one camera and
    is removed from the URL sent to the camera.
    """
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    query = parse_qsl(parts.query, keep_blank_values=True)
    transport = next((v for k, v in query if k == "transport"), None)
    if transport is not None:
        query = [(k, v) for k, v in query if k != "transport"]
        spec = urlunsplit(parts._replace(query=urlencode(query)))
    opts: dict[str, str] = {}
    extra = dict(options or {})
    transport = extra.pop("transport", transport)
    # FFmpeg ≥ 5 (PyAV bundles ≥ 7) calls the socket I/O timeout `timeout` for rtsp, http and tcp alike;
    # the old rtsp name `stimeout` no longer exists.
    opts["timeout"] = str(int(cfg.read_timeout_s * 1_000_000))
    if scheme in ("rtsp", "rtsps"):
        opts["rtsp_transport"] = transport or getattr(cfg, "transport", "tcp")
    if scheme in ("rtmp", "rtmps"):
        opts.pop("timeout")  # rtmp's `timeout` means "listen", which would turn us into a server
    opts.update(extra)
    return spec, opts


def open_source(
    spec: str,
    cfg: SourceConfig | None = None,
    name: str | None = None,
    *,
    options: Mapping[str, str] | None = None,
    on_event: Callable[[dict], None] | None = None,
) -> Source:
    """Open a video file, image folder, single image, camera URL or `/dev/videoN` webcam.

    Raises `InputError` with a one-line message naming the problem and the (redacted) path/URL.
    `options` are extra FFmpeg demuxer/protocol options for network and webcam sources. Cameras and
    webcams give a `LiveSource`; `on_event` receives its events (also settable later as `.on_event`),
    including the retries while opening. `${VAR}` in a URL is filled from the environment.
    """
    cfg = cfg or SourceConfig()
    spec = str(spec)
    shown = redact(spec)
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""

    if scheme in NETWORK_SCHEMES:
        expanded, secrets = _expand_env(spec, shown)
        target, opts = _network_options(expanded, cfg, options)
        parts = urlsplit(shown)
        display = name or (parts.netloc + parts.path) or shown
        return LiveSource(target, cfg, display, shown, options=opts, secrets=secrets, on_event=on_event)
    if scheme:
        raise InputError(f"unsupported source {shown}: use a file, a folder, rtsp://, http(s):// or /dev/videoN")

    if re.fullmatch(r"/dev/video\d+", spec):
        opts = {**(options or {})}
        return LiveSource(spec, cfg, name or Path(spec).name, spec, format="v4l2", options=opts, on_event=on_event)

    path = Path(spec).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"file not found: {spec}") from None
    except OSError as e:
        raise InputError(f"cannot access {spec}: {e.strerror}") from None

    if stat.S_ISDIR(st.st_mode):
        try:
            entries = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
        except OSError as e:
            raise InputError(f"cannot list folder {spec}: {e.strerror}") from None
        if not entries:
            raise InputError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {spec}")
        entries.sort(key=lambda p: _natural_key(p.name))
        return ImageSource(entries, cfg, name or path.resolve().name or spec, spec)

    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"not a regular file or folder: {spec}")
    if st.st_size == 0:
        raise InputError(f"empty file (0 bytes): {spec}")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise InputError(f"cannot read {spec}: {e.strerror}") from None
    display = name or path.name
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return ImageSource([path], cfg, display, spec)
    return VideoSource(str(path), cfg, display, spec, live=False)
