"""Video: the annotated H.264 output, one output frame per input frame at the input's times.

Timestamps come from each frame's presentation time, not from a frame counter, so variable-frame-
rate CCTV (dropped frames, irregular NVR timing) plays back in step with the source. Nothing is
dropped or duplicated: a colliding timestamp is nudged forward by one tick instead.

The MP4 is fragmented (FFmpeg's `movflags`): a fragment of about `FRAGMENT_S` is written out as soon as
it is complete, so a run killed outright (or a power cut) leaves a file that plays up to its last few
seconds; a finished run's file is the same single MP4 with every frame. On a write error (disk full)
the file is cut back to its last complete fragment, so it stays playable.
"""

from __future__ import annotations

import math
import os
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ...core.config import OutputConfig
from ...core.errors import ConfigError, write_error

FINE_TIME_BASE = Fraction(1, 90000)
FRAGMENT_S = 1.0  # a killed run loses at most this much video (plus the encoder's few frames of delay)
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof",
              "frag_duration": str(int(FRAGMENT_S * 1_000_000)), "flush_packets": "1"}


class VideoWriter:
    """Encodes BGR frames to H.264 (libx264, yuv420p) in an MP4 with pts taken from frame times.

    The first frame is placed at t=0 (its source time is kept in `start_time`); later frames keep
    their offsets from it. Odd widths/heights are padded by one replicated pixel (yuv420p needs
    even sizes, at least 2) so no source pixel is lost.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, cfg: OutputConfig,
                 time_base: Fraction | None = None) -> None:
        crf, preset = cfg.video_crf, cfg.video_preset
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        if self.width < 1 or self.height < 1:
            raise ValueError(f"video size {width}x{height} is empty")
        self.enc_width, self.enc_height = (max(2, v + v % 2) for v in (self.width, self.height))
        # A coarse input time base (e.g. 1/25) can't express jittered times; fall back to 1/90000.
        tb = Fraction(time_base) if time_base else FINE_TIME_BASE
        self.time_base = tb if tb.numerator > 0 and tb <= Fraction(1, 1000) else FINE_TIME_BASE
        fps = fps if fps and math.isfinite(fps) and fps > 0 else 25.0
        self.fps = fps
        self.frames_written = 0
        self.good_bytes = 0  # the file's size at its last complete fragment
        self.start_time: float | None = None
        self._last_pts: int | None = None
        self._closed = False
        self._close_pending = False
        self._lock = threading.Lock()

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(self.path), mode="w", format="mp4", options=dict(FRAGMENTED))
        except OSError as e:
            raise write_error(self.path, e) from None
        rate = Fraction(fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = self.enc_width, self.enc_height
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        # Frames are converted with OpenCV (BT.601, limited range, correctly rounded); say so in the VUI.
        stream.codec_context.colorspace = 6  # AVCOL_SPC_SMPTE170M (BT.601)
        stream.codec_context.color_range = 1  # AVCOL_RANGE_MPEG (limited)
        # No B-frames: with reordering, MP4 sample durations come from dts deltas, which VFR input
        # makes wrong (the container then reports a short duration). I/P only keeps dts == pts.
        stream.options = {"crf": str(int(crf)), "preset": preset, "bf": "0"}
        self._stream = stream
        try:  # open now, so a bad preset is reported before any work is done
            stream.codec_context.open()
        except av.error.FFmpegError as e:
            self._closed = True
            self._container.close()
            self.path.unlink(missing_ok=True)
            raise ConfigError(f"output.video_preset: libx264 cannot open with preset={preset!r}, crf={crf} ({e.strerror})") from None

    # ------------------------------------------------------------------ writing

    def write(self, image: np.ndarray, time: float) -> None:
        """Encode one BGR frame shown at `time` seconds. Ignored once the writer is closed."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("VideoWriter.write re-entered while writing")
        try:
            if self._closed:
                return
            pts = self._next_pts(time)
            # OpenCV's I420 conversion is unbiased (mean colour within 0.02 level of BT.601) and 10× faster
            # than `yuv.from_bgr`; it point-samples chroma, which a viewing copy can afford: tiles, galleries
            # and reports are cut from the decoded frames, never from this video.
            yuv = cv2.cvtColor(self._fit(image), cv2.COLOR_BGR2YUV_I420)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.colorspace, frame.color_range = 6, 1
            frame.pts = pts
            frame.time_base = self.time_base
            self._mux(self._stream.encode(frame))
            self.frames_written += 1
            self._last_pts = pts
        finally:
            self._lock.release()
            if self._close_pending:
                self.close()

    def _mux(self, packets: list[av.Packet]) -> None:
        """Mux, noting where the file's last complete fragment ends (each mux call flushes whole fragments)."""
        try:
            for packet in packets:
                self._container.mux(packet)
        except OSError as e:
            self._closed = True
            self._cut()
            raise write_error(self.path, e) from None
        if packets:
            self.good_bytes = os.path.getsize(self.path)

    def _cut(self) -> None:
        """After a failed write: drop the partial fragment so the file ends on a complete one."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the trailer cannot be written either; the cut below is what counts
            pass
        try:
            os.truncate(self.path, self.good_bytes)
        except OSError:
            pass

    def _next_pts(self, time: float) -> int:
        prev = self._last_pts
        if time is None or not math.isfinite(time):
            # No usable time: one nominal frame after the previous one.
            time = (self.start_time or 0.0) + (0 if prev is None else float(prev * self.time_base) + 1.0 / self.fps)
        if self.start_time is None:
            self.start_time = float(time)
        pts = int(round((float(time) - self.start_time) / self.time_base))
        if prev is not None and pts <= prev:
            pts = prev + 1  # collision or time going backwards: keep the frame, bump by one tick
        return max(pts, 0)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        h, w = image.shape[:2]
        if (w, h) != (self.width, self.height):
            # A frame of another size (e.g. a mid-stream resolution change): fit it, aspect kept,
            # on black, rather than drop it or distort it.
            k = min(self.width / w, self.height / h)
            nw, nh = max(1, min(self.width, round(w * k))), max(1, min(self.height, round(h * k)))
            small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
            image = np.zeros((self.height, self.width, 3), np.uint8)
            x, y = (self.width - nw) // 2, (self.height - nh) // 2
            image[y : y + nh, x : x + nw] = small
        if (self.enc_width, self.enc_height) != (self.width, self.height):
            image = cv2.copyMakeBorder(
                image, 0, self.enc_height - self.height, 0, self.enc_width - self.width, cv2.BORDER_REPLICATE
            )
        return np.ascontiguousarray(image, dtype=np.uint8)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Flush the encoder and finalize the MP4. Idempotent; if it interrupts a write() (signal
        handler), the close is deferred to the end of that write."""
        if self._closed:
            return
        if not self._lock.acquire(blocking=False):
            self._close_pending = True
            return
        try:
            if self._closed:
                return
            self._closed = True
            self._close_pending = False
            if self.frames_written:
                try:
                    packets = self._stream.encode(None)
                except OSError as e:
                    self._cut()
                    raise write_error(self.path, e) from None
                self._mux(packets)
            try:
                self._container.close()
            except OSError as e:
                self._cut()
                raise write_error(self.path, e) from None
        finally:
            self._lock.release()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close still leaves a playable file
        try:
            self.close()
        except Exception:
            pass


class SegmentedVideoWriter:
    """Annotated video as rolling, individually finalized files, so a crash loses at most one segment.

    `annotated_0001.mp4`, `annotated_0002.mp4`, … each about `segment_s` of stream time; `roll()` starts
    a new one early (after a camera reconnects, when its picture size may have changed).
    """

    def __init__(self, folder: Path, width: int, height: int, fps: float, cfg: OutputConfig,
                 stem: str = "annotated") -> None:
        self.folder, self.segment_s, self.stem = Path(folder), cfg.segment_minutes * 60, stem
        self.width, self.height, self.fps, self.cfg = width, height, fps, cfg
        self.paths: list[Path] = []
        self._writer: VideoWriter | None = None
        self._start: float | None = None
        self.frames_written = 0

    def write(self, image: np.ndarray, time: float) -> None:
        if self._writer is None or (self.segment_s > 0 and time - self._start >= self.segment_s):
            self.roll(image.shape[1], image.shape[0])
            self._start = time
        self._writer.write(image, time)
        self.frames_written += 1

    def roll(self, width: int | None = None, height: int | None = None) -> None:
        """Finalize the open segment (if any) and open the next."""
        self.close()
        self.width, self.height = width or self.width, height or self.height
        path = self.folder / f"{self.stem}_{len(self.paths) + 1:04d}.mp4"
        self.paths.append(path)
        self._writer = VideoWriter(path, self.width, self.height, self.fps, self.cfg)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
