"""Sources: turn a file, an image folder, a camera URL or a webcam into a stream of upright `Frame`s.

`open_source(spec)` probes by content, not by extension, and fails early with a one-line
`InputError` naming the problem and the path. Decoding is streamed (bounded memory), only the
video stream is demuxed (a broken audio track never stops the video), rotation metadata is
applied, and times come from each frame's PTS so variable-frame-rate recordings keep their clock.
Damaged files yield every frame that can be decoded; what was skipped is counted, not raised.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping
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

__all__ = ["IMAGE_EXTENSIONS", "ImageSource", "Source", "VideoSource", "open_source", "redact"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "srt", "udp", "tcp")
MAX_ERRORS = 20  # how many skip descriptions a source keeps (the count in `skipped` is exact)
MAX_CONSECUTIVE_FAILURES = 1000  # a file this broken is given up on rather than scanned to the end
DEFAULT_FPS = 25.0

# Leading bytes of still images: a single picture is read with OpenCV, everything else with FFmpeg.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*")
_CREDENTIALS = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@")  # up to the last @ of the authority


def redact(uri: str) -> str:
    """Hide `user:pass@` in a URL so it can be logged, shown and written to manifests."""
    return _CREDENTIALS.sub(r"\1***@", uri)


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
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.name, self.uri, self.live = name, uri, live
        self._target = target
        timeout = (cfg.open_timeout_s, cfg.read_timeout_s) if live else None
        try:
            self._container = av.open(
                target, mode="r", format=format, options=dict(options or {}), timeout=timeout
            )
        except (av.error.FFmpegError, OSError) as e:
            what = "cannot open" if live else "not a media file or unsupported format"
            raise InputError(f"{what} {uri}: {_reason(e, target)}") from None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        container = self._container
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise InputError(f"no video stream in {self.uri} ({kinds})")
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
            raise InputError(f"no decodable video frames in {self.uri}{detail}") from None
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
            except StopIteration:
                return
            except av.error.EOFError:
                return
            except (av.error.FFmpegError, OSError) as e:
                # Read errors on a live feed (timeout, peer gone) end the stream; reconnecting is the caller's policy.
                self._skip(f"read error: {_reason(e, self._target)}")
                failures += 1
                if self.live or failures >= MAX_CONSECUTIVE_FAILURES:
                    if not self.live:
                        self._note(f"gave up after {failures} consecutive failures")
                    return
                packets = self._container.demux(stream)  # the old generator died with the exception
                continue
            try:
                decoded = packet.decode()
            except (av.error.FFmpegError, ValueError) as e:
                where = f" at pts {packet.pts}" if packet.pts is not None else ""
                self._skip(f"undecodable packet{where}: {_reason(e, self._target)}")
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


def _network_options(spec: str, cfg: SourceConfig, options: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
    """FFmpeg options for a camera URL: TCP for RTSP unless asked otherwise, socket timeouts in µs.

    A `transport=udp|tcp|http` query parameter (or `options["transport"]`) picks the RTSP transport and
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
        opts["rtsp_transport"] = transport or "tcp"
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
) -> Source:
    """Open a video file, image folder, single image, camera URL or `/dev/videoN` webcam.

    Raises `InputError` with a one-line message naming the problem and the (redacted) path/URL.
    `options` are extra FFmpeg demuxer/protocol options for network and webcam sources.
    """
    cfg = cfg or SourceConfig()
    spec = str(spec)
    shown = redact(spec)
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""

    if scheme in NETWORK_SCHEMES:
        target, opts = _network_options(spec, cfg, options)
        parts = urlsplit(shown)
        display = name or (parts.netloc + parts.path) or shown
        return VideoSource(target, cfg, display, shown, live=True, options=opts)
    if scheme:
        raise InputError(f"unsupported source {shown}: use a file, a folder, rtsp://, http(s):// or /dev/videoN")

    if re.fullmatch(r"/dev/video\d+", spec):
        opts = {**(options or {})}
        return VideoSource(spec, cfg, name or Path(spec).name, spec, live=True, format="v4l2", options=opts)

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
