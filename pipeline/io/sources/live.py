"""Live cameras: a feed that survives its camera.

A background thread reads into a small queue that drops the oldest frame when the consumer falls behind,
and reconnects with exponential backoff and jitter when the feed errors, ends or stalls; frames carry
wall-clock times that keep increasing across reconnects, the capture time for latency, and the
connection generation (`Frame.segment`).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from ...core.config import SourceConfig
from ...core.errors import InputError
from ...core.text import clean
from ...core.types import Frame
from ..events import CameraGaveUp, CameraOffline, CameraOnline, CameraReconnecting, Event, FramesDropped
from .base import MAX_ERRORS, Source, Target, no_event
from .urls import userinfo
from .video import VideoSource

log = logging.getLogger(__name__)

DROP_REPORT_S = 1.0  # at most one "dropped" event per this many seconds
CLOSE_JOIN_S = 1.5  # how long close() waits for a reader thread blocked inside FFmpeg
MAX_EVENTS = 1000  # events waiting for the consumer (older ones are discarded beyond this)
MIN_BACKOFF_S = 0.05  # even reconnect_initial_s=0 must not spin on a refused connection


class LiveSource(Source):
    """A camera feed that survives its camera: reads in a background thread, drops the oldest frame when
    the consumer falls behind, and reconnects with exponential backoff and jitter when the feed fails.

    Each connection is a `VideoSource`; this class strings them together. Frames get `index` in delivery
    order, `time` = seconds since the first frame arrived (monotonic clock, so it keeps increasing across
    reconnects even though the stream's own PTS restarts), `captured` = `time.time()` at arrival, and
    `segment` = the connection generation. `pts` is the stream's own and restarts with each connection.

    Typed events (`pipeline.io.events`) go to `on_event(event)`, called in the thread that iterates the
    source (and, for attempts while opening, in the thread that calls `open_source`): `CameraOffline`,
    `CameraReconnecting` (before each wait), `CameraOnline`, `CameraGaveUp`, and `FramesDropped` at most
    once per second. Their `time` is on the frames' clock, `at` is `time.time()`.
    `close()` may be called from any thread (e.g. a signal handler): it ends iteration and stops the reader.
    """

    live = True

    def __init__(self, target: Target, cfg: SourceConfig, on_event: Callable[[Event], None] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.name, self.uri = target.name, target.uri
        self.on_event = on_event or no_event
        self._target = dataclasses.replace(target, secrets=target.secrets + tuple(userinfo(target.url)))
        # each connection decodes everything; max_frames is counted here, over all connections
        self._conn_cfg = dataclasses.replace(cfg, max_frames=0)
        self.queue_size = max(1, cfg.live_queue)
        self.frame_count, self.duration = None, None
        self.received = 0  # frames that arrived (delivered + dropped + still queued)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._queue: deque[Frame] = deque()
        self._events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self._finished = False
        self._failure: BaseException | None = None
        self._t0: float | None = None  # monotonic time of the first frame
        self._last_time = -1.0
        self._last_arrival: float | None = None
        self._in_thread = False  # events from the reader thread are queued for the consumer
        self._thread: threading.Thread | None = None

        conn = self._open_at_start()
        self.width, self.height, self.fps, self.time_base = conn.width, conn.height, conn.fps, conn.time_base
        self._thread = threading.Thread(target=self._run, args=(conn,), name=f"source {self.name}", daemon=True)
        self._in_thread = True
        self._thread.start()

    # ------------------------------------------------------------------ connections

    def _connect(self) -> VideoSource:
        return VideoSource(self._target, self._conn_cfg, live=True)

    def _backoff(self, attempt: int) -> float:
        """Delay before reconnect `attempt` (1-based): exponential, capped, with 50–100 % jitter."""
        first = max(MIN_BACKOFF_S, float(self.cfg.reconnect_initial_s))
        ceiling = max(first, float(self.cfg.reconnect_max_s))
        return min(ceiling, first * 2 ** min(attempt - 1, 30)) * random.uniform(0.5, 1.0)

    def _clock(self) -> float:
        return round(time.monotonic() - self._t0, 3) if self._t0 is not None else 0.0

    def _emit(self, kind: type[Event], **fields: object) -> None:
        event = kind(source=self.name, time=self._clock(), **fields)  # type: ignore[arg-type]
        if not self._in_thread:
            self.on_event(event)
            return
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def _open_at_start(self) -> VideoSource:
        """The first connection: `reconnect_attempts_at_start` tries (a one-shot command gives up and says
        why), or with 0 as many as it takes, with the same backoff as a reconnect (a camera service waits for
        a camera that is down when it starts). A permanent failure (wrong password, no such path) never
        retries."""
        attempts = self.cfg.reconnect_attempts_at_start
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._connect()
            except InputError as e:
                reason = e.reason
                if e.permanent or (attempts and attempt >= attempts) or self._stop.is_set():
                    plural = "s" if attempt > 1 else ""
                    raise InputError(f"cannot open {self.uri} after {attempt} attempt{plural}: {reason}") from None
            delay = self._backoff(attempt)
            if not attempts:  # waiting as long as it takes: say so now and then (a one-shot says why at the end)
                log.warning("%s is down (attempt %d: %s): retrying in %.1f s", clean(self.uri), attempt,
                            clean(str(reason)), delay)
            self._emit(CameraReconnecting, attempt=attempt + 1, after_s=round(delay, 3), reason=reason)
            time.sleep(delay)

    def _reconnect(self, reason: str, down_since: float) -> VideoSource | None:
        """Retry until a connection delivers a frame, attempts run out (None) or the source is closed (None)."""
        limit = self.cfg.reconnect_attempts
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            if limit and attempt > limit:
                self._note(f"gave up after {limit} reconnect attempts: {reason}")
                self._emit(CameraGaveUp, attempts=limit, reason=reason)
                return None
            delay = self._backoff(attempt)
            self._emit(CameraReconnecting, attempt=attempt, after_s=round(delay, 3), reason=reason)
            if self._stop.wait(delay):
                return None
            try:
                conn = self._connect()
            except InputError as e:
                reason = e.reason
                continue
            if self._stop.is_set():
                conn.close()
                return None
            self.generation += 1
            self.reconnects += 1
            self._emit(CameraOnline, attempt=attempt, segment=self.generation,
                       downtime_s=round(time.monotonic() - down_since, 3))
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
                self._emit(CameraOffline, reason=reason, segment=self.generation)
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
                self.on_event(FramesDropped(source=self.name, count=dropped - reported, total=dropped,
                                            time=self._clock()))
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
