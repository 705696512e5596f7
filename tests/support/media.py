"""Build small test media with PyAV alone (no ffmpeg CLI needed): videos with rotation metadata,
variable frame rate, audio, odd codecs/containers, and damaged copies of real files.

Every frame made by `pattern` has a bright 8×8 top-left corner (shows orientation) and a row of
blocks encoding its index in binary (shows order), so tests can check what they got back.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .paths import IMAGES

CODECS = {"h264": "libx264", "h265": "libx265", "hevc": "libx265", "mpeg4": "mpeg4", "mjpeg": "mjpeg"}
_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".m4a": "mp4", ".ts": "mpegts"}
BITS = 10  # index blocks per frame: enough for 1024 frames


def pattern(index: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A BGR frame: grey, bright top-left corner, index bits as 6-px blocks along the bottom row."""
    w, h = size
    img = np.full((h, w, 3), 60, np.uint8)
    img[:8, :8] = 255
    for b in range(BITS):
        if index >> b & 1:
            img[h - 6 :, b * 6 : b * 6 + 6] = 220
    return img


def read_index(image: np.ndarray) -> int:
    """Decode the index drawn by `pattern` (for unrotated frames)."""
    h = image.shape[0]
    return sum(1 << b for b in range(BITS) if image[h - 4 : h - 2, b * 6 + 2 : b * 6 + 4].mean() > 140)


def vfr_times(frames: int) -> list[float]:
    """Irregular presentation times (s): gaps cycle 40, 40, 200, 80, 500 ms."""
    gaps = [0.04, 0.04, 0.2, 0.08, 0.5]
    out, t = [], 0.0
    for i in range(frames):
        out.append(round(t, 3))
        t += gaps[i % len(gaps)]
    return out


def make_video(
    path: str | Path,
    frames: int = 30,
    size: tuple[int, int] = (64, 48),
    codec: str = "h264",
    fps: float = 25,
    rotate: int | None = None,
    vfr: bool | Sequence[float] = False,
    audio: bool = False,
    container: str | None = None,
    gop: int | None = None,
) -> Path:
    """Encode `frames` pattern frames; `rotate` is the clockwise display rotation (like a phone's `rotate=90` tag).

    The container comes from the extension, or `container` (e.g. "mp4" for an H.265 file named `.jpg`).
    `vfr=True` uses `vfr_times`, a sequence gives the times (s) directly. mp4/mov get `faststart` so a
    truncated copy keeps its index. `gop` sets the keyframe interval (a live viewer joining mid-stream
    waits for the next keyframe).
    """
    path = Path(path)
    fmt = container or _FORMATS.get(path.suffix.lower(), "mp4")
    options = {"movflags": "faststart"} if fmt in ("mp4", "mov") else {}
    times = list(vfr_times(frames) if vfr is True else vfr) if vfr else None
    with av.open(str(path), "w", format=fmt, options=options) as out:
        rate = Fraction(fps).limit_denominator(1001)
        stream = out.add_stream(CODECS.get(codec, codec), rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec in ("h265", "hevc"):
            stream.codec_context.options = {"x265-params": "log-level=error"}
        if gop:
            stream.codec_context.gop_size = gop
        tb = Fraction(1, 1000) if times else 1 / rate
        stream.codec_context.time_base = tb
        if rotate:
            if not hasattr(type(stream), "set_display_rotation"):  # PyAV 17.1+; the reader needs only 14.2
                import pytest

                pytest.skip(f"PyAV {av.__version__} cannot write display rotation (test media needs 17.1+)")
            stream.set_display_rotation(-rotate)  # PyAV/FFmpeg count counter-clockwise
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=48000)
            astream.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, size), format="bgr24")
            frame.pts = round(times[i] * 1000) if times else i
            frame.time_base = tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None:
            _write_tone(out, astream, seconds=frames / fps)
    return path


def encode(path: str | Path, frames: Sequence[np.ndarray], fps: int = 25, aspect: Fraction | None = None) -> Path:
    """BGR frames as an H.264 MP4; `aspect`: the pixels' width/height the stream declares (a half-D1 DVR
    channel stores 352×576 at 24:11)."""
    return make_channels(path, [frames], fps, cover=False, aspect=aspect)


def make_channels(path: str | Path, channels: Sequence[Sequence[np.ndarray]], fps: int = 25,
                  cover: bool = True, aspect: Fraction | None = None) -> Path:
    """A DVR export holding several cameras (MP4): one H.264 stream per channel carrying its BGR frames,
    interleaved as a recorder writes them; with `cover`, an MJPEG cover picture flagged `attached_pic`, as
    phones and editing tools add one."""
    with av.open(str(path), "w", format="mp4") as out:
        streams = []
        for frames in channels:
            stream = out.add_stream("libx264", rate=fps)
            stream.height, stream.width = frames[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            if aspect is not None:
                stream.codec_context.sample_aspect_ratio = aspect
            streams.append(stream)
        if cover:
            pic = out.add_stream("mjpeg", rate=1)
            pic.height, pic.width = channels[0][0].shape[:2]
            pic.pix_fmt = "yuvj420p"
            pic.disposition = av.stream.Disposition.attached_pic
            image = av.VideoFrame.from_ndarray(channels[0][0], format="bgr24").reformat(format="yuvj420p")
            for packet in [*pic.encode(image), *pic.encode()]:
                out.mux(packet)
        for i in range(max(len(frames) for frames in channels)):
            for stream, frames in zip(streams, channels):
                if i < len(frames):
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(frames[i], format="bgr24")))
        for stream in streams:
            out.mux(stream.encode())
    return Path(path)


def make_interlaced(path: str | Path, face: np.ndarray, frames: int = 50, size: tuple[int, int] = (720, 576),
                    step: float = 5.0, rotate: int | None = None) -> Path:
    """An interlaced 25 fps H.264 clip as an analogue camera's DVR stores it: `face` (BGR) slides right by `step`
    px per field on grey, and each frame weaves two fields 1/50 s apart (top field first), so the moving face
    is combed. The stream flags its frames interlaced (x264 `interlaced=1:tff=1`)."""
    w, h = size
    fh, fw = face.shape[:2]

    def field_image(t: int) -> np.ndarray:
        img = np.full((h, w, 3), 90, np.uint8)
        x = int(20 + t * step)
        img[h // 3 : h // 3 + fh, x : x + fw] = face
        return img

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = {"crf": "18", "x264-params": "interlaced=1:tff=1"}
        if rotate:
            stream.set_display_rotation(-rotate)
        for n in range(frames):
            woven = field_image(2 * n)
            woven[1::2] = field_image(2 * n + 1)[1::2]
            for packet in stream.encode(av.VideoFrame.from_ndarray(woven, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Path(path)


def _write_tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    """A quiet 440 Hz tone, in 1024-sample AAC frames."""
    rate, n = 48000, 1024
    total = int(seconds * rate)
    for start in range(0, max(total, n), n):
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        samples = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def make_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """An AAC-only mp4/m4a: a valid media file with no video stream."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "mono"
        _write_tone(out, stream, seconds)
    return path


def truncate(path: str | Path, out: str | Path, fraction: float) -> Path:
    """Copy the first `fraction` of the bytes, as a recording cut off by a crash or full disk."""
    data = Path(path).read_bytes()
    Path(out).write_bytes(data[: int(len(data) * fraction)])
    return Path(out)


def corrupt_middle(
    path: str | Path, out: str | Path, start: float = 0.4, length: float = 0.2, seed: int = 0
) -> Path:
    """Overwrite bytes [start, start+length) (fractions of the size) with random garbage, keeping the size."""
    data = bytearray(Path(path).read_bytes())
    a, b = int(len(data) * start), int(len(data) * (start + length))
    data[a:b] = np.random.default_rng(seed).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    Path(out).write_bytes(bytes(data))
    return Path(out)


def copy_images(folder: str | Path, names: Sequence[str], rename: Sequence[str] | None = None) -> Path:
    """Copy shared photos into `folder` (optionally under new names) for image-folder sources."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for src, dst in zip(names, rename or names):
        shutil.copyfile(IMAGES / src, folder / dst)
    return folder


def count_packets(path: str | Path) -> int:
    """Video frames in a file counted independently: decode every video packet with plain PyAV."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return sum(len(p.decode()) for p in c.demux(stream))
