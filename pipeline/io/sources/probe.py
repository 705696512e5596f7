"""`open_source(spec)`: which kind of input a spec is — camera URL, webcam, image folder, picture or media
file — decided by its content, not its extension, and the `Source` that reads it.

Fails early with a one-line `InputError` naming the problem and the (redacted) path or URL. A source's
`name` (what progress lines, logs, events and reports show) has its control characters escaped (`clean`):
a file called "cam\nFAKE: complete" cannot split or forge a line.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import av
import av.error

from ...core.config import SourceConfig
from ...core.errors import InputError
from ...core.text import clean, expand_env
from ..events import Event
from .base import Source, Target
from .images import ImageSource, natural_key
from .live import LiveSource
from .urls import NETWORK_SCHEMES, network_options, redact
from .video import VideoSource, cameras

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# Leading bytes of still images: a single picture is read with OpenCV, everything else with FFmpeg.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*")
# `FILE:v:N`: the file's Nth video stream, in FFmpeg's stream-specifier words (one channel of a DVR export).
STREAM_SPEC = re.compile(r"(.+):v:(\d+)")


def split_stream(spec: str) -> tuple[str, int | None]:
    """`FILE:v:N` → (FILE, N); anything else (a URL, a file whose own name ends so) → (spec, None)."""
    m = STREAM_SPEC.fullmatch(spec)
    if m is None or "://" in spec or Path(spec).expanduser().exists():
        return spec, None
    return m[1], int(m[2])


def camera_streams(path: str | Path) -> list[int]:
    """A media file's camera streams as `v:N` numbers; [] where FFmpeg cannot read it (`open_source` says why)."""
    try:
        with av.open(str(path), "r") as container:
            return cameras(container)
    except (av.error.FFmpegError, OSError, ValueError):
        return []


def open_source(
    spec: str,
    cfg: SourceConfig | None = None,
    name: str | None = None,
    *,
    options: Mapping[str, str] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> Source:
    """Open a video file (`FILE:v:N`: its Nth video stream), image folder, single image, camera URL or
    `/dev/videoN` webcam.

    Raises `InputError` with a one-line message naming the problem and the (redacted) path/URL.
    `options` are extra FFmpeg demuxer/protocol options for network and webcam sources. Cameras and
    webcams give a `LiveSource`; `on_event` receives its events (also settable later as `.on_event`),
    including the retries while opening. `${VAR}` in a URL is filled from the environment.
    """
    cfg = cfg or SourceConfig()
    spec = str(spec)
    shown = redact(spec)
    try:
        scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""
    except ValueError as e:  # e.g. "Invalid IPv6 URL" for rtsp://[::1
        raise InputError(f"bad URL {shown}: {e}") from None

    if scheme in NETWORK_SCHEMES:
        expanded, secrets = expand_env(spec, shown, InputError)
        target, opts = network_options(expanded, cfg, options)
        parts = urlsplit(shown)
        display = clean(name or (parts.netloc + parts.path) or shown)
        return LiveSource(Target(target, display, shown, options=opts, secrets=tuple(secrets)), cfg, on_event)
    if scheme:
        raise InputError(f"unsupported source {shown}: use a file, a folder, rtsp://, http(s):// or /dev/videoN")

    if re.fullmatch(r"/dev/video\d+", spec):
        opts = {**(options or {})}
        return LiveSource(Target(spec, clean(name or Path(spec).name), spec, "v4l2", opts), cfg, on_event)

    spec_path, stream = split_stream(spec)
    path = Path(spec_path).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"file not found: {spec}") from None
    except OSError as e:
        raise InputError(f"cannot access {spec}: {e.strerror}") from None

    if stat.S_ISDIR(st.st_mode):
        if stream is not None:
            raise InputError(f"{spec}: v:{stream} names a video stream, and {spec_path} is a folder")
        try:
            entries = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
        except OSError as e:
            raise InputError(f"cannot list folder {spec}: {e.strerror}") from None
        if not entries:
            raise InputError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {spec}")
        entries.sort(key=lambda p: natural_key(p.name))
        return ImageSource(entries, cfg, clean(name or path.resolve().name or spec), spec)

    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"not a regular file or folder: {spec}")
    if st.st_size == 0:
        raise InputError(f"empty file (0 bytes): {spec}")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise InputError(f"cannot read {spec}: {e.strerror}") from None
    display = clean(name or Path(spec).name)
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        if stream is not None:
            raise InputError(f"{spec}: v:{stream} names a video stream, and {spec_path} is a picture")
        return ImageSource([path], cfg, display, spec)
    return VideoSource(Target(str(path), display, spec), cfg, live=False, stream=stream)
