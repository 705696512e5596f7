"""Media files (and single camera connections) through FFmpeg: container → video stream → upright frames.

Decoding is streamed (bounded memory), only the video stream is demuxed (a broken audio track never
stops the video), rotation metadata is applied, and times come from each frame's PTS so variable-frame-
rate recordings keep their clock. A damaged file yields every frame that can be decoded (the decoder is
drained wherever reading stops, so the frames it still holds come out too); what was skipped is counted,
not raised, and `frames_expected` (the container's own frame count) shows a file that was cut short.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import av
import av.error
import cv2
import numpy as np

from ...core.config import SourceConfig
from ...core.errors import InputError
from ...core.types import Frame
from ...core.yuv import to_bgr
from .base import Source, Target, check_pixels
from .deinterlace import Deinterlacer
from .urls import reason, scrub

DEFAULT_FPS = 25.0
ASPECT_TOLERANCE = 0.01  # pixels within 1% of square are taken as square
# A video stream that is one picture, not a camera: cover art, a still, a thumbnail track.
NOT_A_CAMERA = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image | \
    av.stream.Disposition.timed_thumbnails
MAX_CONSECUTIVE_FAILURES = 1000  # a file this broken is given up on rather than scanned to the end
# a wrong password or path does not fix itself: no point retrying
PERMANENT = (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError, av.error.HTTPNotFoundError)


def cameras(container: av.container.InputContainer) -> list[int]:
    """The video streams that are cameras, as FFmpeg's `v:N` numbers (positions among the video streams):
    a DVR export may hold one per channel; cover pictures and thumbnail tracks are left out."""
    return [n for n, s in enumerate(container.streams.video) if not s.disposition & NOT_A_CAMERA]


def square_pixels(image: np.ndarray, aspect: Fraction | None) -> np.ndarray:
    """A frame of non-square pixels (`aspect` = pixel width / height: PAL D1 720×576 at 16:15, half-D1 352×576
    at 24:11, CIF 352×288 at 12:11, NTSC 720×480 at 8:9) resampled to square ones, as a player shows it. The
    side the aspect stretches grows, so no camera sample is dropped. Faces keep their true shape: the 5-point
    similarity alignment can turn and scale a face but not undo a squeeze, which the generator would then
    take for the person's own face."""
    if not aspect or abs(aspect - 1) < ASPECT_TOLERANCE:
        return image
    h, w = image.shape[:2]
    size = (round(w * aspect), h) if aspect > 1 else (w, round(h / aspect))
    return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)


def rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate counter-clockwise by a multiple of 90° (FFmpeg's display-matrix convention)."""
    k = round(degrees / 90) % 4
    if k == 1:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if k == 2:
        return cv2.rotate(image, cv2.ROTATE_180)
    if k == 3:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


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


class VideoSource(Source):
    """Anything FFmpeg can demux: a file, or one connection to a camera. Decodes one video stream: `stream`
    (FFmpeg's `v:N`), or by default the first that is a camera."""

    def __init__(self, target: Target, cfg: SourceConfig, live: bool, stream: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.name, self.uri, self.live = target.name, target.uri, live
        self._target = target.url
        self._secrets = target.secrets
        self.stop_reason: str | None = None  # live: why the stream ended (read error, end of stream)
        self.pixel_aspect: Fraction | None = None  # the container's, else the codec's, else 1 (from the 1st frame)
        self._opening = True  # which timeout an interrupted call ran into
        timeout = (cfg.open_timeout_s, cfg.read_timeout_s) if live else None
        try:
            self._container = av.open(
                target.url, mode="r", format=target.format, options=dict(target.options), timeout=timeout
            )
        except (av.error.FFmpegError, OSError) as e:
            what = "cannot open" if live else "not a media file or unsupported format"
            why = self._why(e)
            raise InputError(f"{what} {self.uri}: {why}", why, permanent=isinstance(e, PERMANENT)) from None
        self._opening = False
        try:
            self._setup(stream)
        except BaseException:
            self.close()
            raise

    def _setup(self, chosen: int | None) -> None:
        container = self._container
        videos = container.streams.video
        if not videos:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise InputError(f"no video stream in {self.uri} ({kinds})", f"no video stream ({kinds})", permanent=True)
        if chosen is not None and chosen >= len(videos):
            has = f"it has {len(videos)}: v:0 to v:{len(videos) - 1}"
            raise InputError(f"no video stream v:{chosen} in {self.uri} ({has})", f"no video stream v:{chosen}",
                             permanent=True)
        found = cameras(container)
        if chosen is None and not found:
            raise InputError(f"no video stream in {self.uri}, only a cover picture", "only a cover picture",
                             permanent=True)
        stream = videos[found[0] if chosen is None else chosen]
        self._stream = stream
        # Everything else is dropped by the demuxer itself, so a broken audio track is never even parsed.
        discard_all = getattr(getattr(av.stream, "Discard", None), "all", None)
        for other in container.streams:
            if other.index != stream.index and discard_all is not None:
                other.discard = discard_all
        cc = stream.codec_context
        if cc.codec.intra_only:
            # Every frame stands alone (MJPEG, ProRes, …): a damaged one is an error, counted and skipped, not
            # a grey picture that decodes "fine" while FFmpeg only logs it; a file whose every frame is
            # damaged is then refused with the decoder's reason instead of ending "complete" with nothing.
            cc.options = {**dict(cc.options or {}), "err_detect": "explode"}
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
                self.frame_count = self.frames_expected = int(stream.frames)
            elif self.duration:
                self.frame_count = max(1, round(self.duration * self.fps))
            else:
                self.frame_count = None
        # Legacy `rotate` tag (clockwise degrees); the display matrix on each frame takes precedence.
        try:
            self._tag_rotation = -int(float(stream.metadata.get("rotate", 0)))
        except ValueError:
            self._tag_rotation = 0

        # The pixel budget, from the stream's headers, before a frame is decoded (and again from the first).
        if cc.width and cc.height:
            check_pixels(self.uri, cc.width, cc.height, self.cfg.max_pixels)
        # Decode the first frame now: it proves the content is decodable and gives the upright size.
        self._frames = self._decode()
        try:
            self._peeked: Frame | None = next(self._frames)
        except StopIteration:
            detail = f": {self.errors[0]}" if self.errors else ""
            if self.stop_reason and not detail:
                detail = f": {self.stop_reason}"
            raise InputError(f"no decodable video frames in {self.uri}{detail}", f"no decodable video frames{detail}") from None
        self.height, self.width = self._peeked.image.shape[:2]
        check_pixels(self.uri, self.width, self.height, self.cfg.max_pixels)

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Demux → decode, skipping what fails; stops after too many failures in a row, then drains the decoder."""
        stream = self._stream
        failures = 0
        packets = self._container.demux(stream)
        while failures < MAX_CONSECUTIVE_FAILURES:
            try:
                packet = next(packets)
            except (StopIteration, av.error.EOFError):
                self.stop_reason = "end of stream"
                break
            except (av.error.FFmpegError, OSError) as e:
                # Read errors on a live feed (timeout, peer gone) end the stream; LiveSource reconnects.
                if self.live:
                    self.stop_reason = f"read error: {self._why(e)}"
                    break
                self._skip(f"read error: {self._why(e)}")
                failures += 1
                packets = self._container.demux(stream)  # the old generator died with the exception
                continue
            try:
                decoded = packet.decode()
            except (av.error.FFmpegError, ValueError) as e:
                where = f" at pts {packet.pts}" if packet.pts is not None else ""
                self._skip(f"undecodable packet{where}: {self._why(e)}")
                failures += 1
                continue
            if decoded:
                failures = 0
            yield from decoded
        else:
            self._note(f"gave up after {failures} consecutive failures")
        yield from self._drain()

    def _drain(self) -> list[av.VideoFrame]:
        """The frames the decoder still holds (frame threads keep several) once no packet follows."""
        try:
            return self._stream.codec_context.decode(None)
        except (av.error.FFmpegError, ValueError):  # already drained by the demuxer's own end-of-stream packet
            return []

    def _decode(self) -> Iterator[Frame]:
        """Decoded frames → upright BGR `Frame`s with times from their PTS, up to `max_frames`."""
        limit = self.cfg.max_frames or None
        delivered = 0
        first_pts: int | None = self._start_pts
        clock = _BestEffortClock()
        last_time: float | None = None
        for frame, (pts, dts, rotation) in Deinterlacer(self._stream, self.cfg.deinterlace)(self._decoded()):
            if limit is not None and delivered >= limit:
                return
            try:
                image = to_bgr(frame)
            except (av.error.FFmpegError, ValueError) as e:  # pragma: no cover - odd pixel formats
                self._skip(f"unconvertible frame at pts {pts}: {reason(e)}")
                continue
            if self.pixel_aspect is None:  # known once the decoder has read the stream's headers
                stream = self._stream
                aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
                self.pixel_aspect = aspect or Fraction(1)
            image = rotate(square_pixels(image, self.pixel_aspect), rotation or self._tag_rotation)
            pts = clock.best_effort(pts, dts)
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
        return scrub(reason(e, self._target), self._secrets)

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
