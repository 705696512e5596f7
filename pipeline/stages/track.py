"""Track: persistent IDs with ByteTrack (the `trackers` library), keypoints riding along.

ByteTrack only assigns IDs; it does not say when a track is over. `Tracker` adds that, and owns the
open `Track` records: a track unseen for `lost_seconds` of stream time has ended, and `finish()` ends
the rest at end of input, so the sinks can write every track, the last one included.
"""

from __future__ import annotations

import statistics
import warnings
from collections import deque

import numpy as np
import supervision as sv
from trackers import BIoU, ByteTrackTracker

from ..core.config import TrackConfig
from ..core.types import Face, Track

# A track outlives at least this many gaps between detections, or at low rates (a DVR recording at 1 fps, a
# large `detect.stride`) a new track is pruned before the detection that would confirm it: no tracks at all.
GAPS_KEPT = 2
RECENT_GAPS = 9  # the gap is the median of this many latest ones: one stall of the stream does not stretch it
# Between detections far apart a face moves further than its own size and plain IoU loses it: boxes are widened
# (buffered IoU, Yang et al., WACV 2023) by BUFFER_PER_S of their size per second of gap beyond FULL_RATE_GAP,
# up to BUFFER_MAX. At full frame rates (detections up to 50 ms apart) association is plain IoU, as before.
FULL_RATE_GAP = 0.05
BUFFER_PER_S = 5.0
BUFFER_MAX = 1.0


class Tracker:
    """Assigns `track_id` to Faces, keeps the open `Track`s (`tracks`) and hands over those that ended."""

    def __init__(self, cfg: TrackConfig, fps: float) -> None:
        self.lost_seconds = self._lost_at_least = cfg.lost_seconds  # grows to GAPS_KEPT gaps between calls
        self._gaps: deque[float] = deque(maxlen=RECENT_GAPS)
        self._last_time: float | None = None
        self._iou = BIoU(0.0)  # its buffer follows the gap before each update
        self._bt = ByteTrackTracker(
            iou=self._iou,
            lost_track_buffer=max(0, round(cfg.lost_seconds * 30)),  # the library counts 30-fps frames
            frame_rate=max(fps, 1e-3),
            track_activation_threshold=cfg.high_threshold,
            high_conf_det_threshold=cfg.high_threshold,
            minimum_consecutive_frames=cfg.min_hits,
            minimum_iou_threshold=cfg.match_threshold,
        )
        self.tracks: dict[int, Track] = {}  # open tracks by id

    def __call__(self, faces: list[Face], time: float) -> list[Face]:
        """Set track_id on each face (-1 while a track is unconfirmed), opening a `Track` for a new id;
        time in stream seconds. A track just opened has no observations yet.

        The gaps between calls are measured, not taken from the stream's declared rate: a camera may declare
        25 fps and send 1, and `detect.stride` or a consumer that falls behind stretch them too."""
        if self._last_time is not None and time > self._last_time:
            gap = time - self._last_time
            self._gaps.append(gap)
            self.lost_seconds = max(self._lost_at_least, GAPS_KEPT * statistics.median(self._gaps))
            self._bt.maximum_time_without_update = self.lost_seconds  # the library's budget, read every update
            self._iou.buffer_ratio = min(BUFFER_MAX, max(0.0, gap - FULL_RATE_GAP) * BUFFER_PER_S)
        self._last_time = time
        if faces:
            dets = sv.Detections(
                xyxy=np.stack([f.box for f in faces]).astype(np.float32),
                confidence=np.array([f.score for f in faces], dtype=np.float32),
                data={"index": np.arange(len(faces))},
            )
        else:
            dets = sv.Detections.empty()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate/backwards timestamps are skipped by the library itself
            out = self._bt.update(dets, timestamp=time)
        for f in faces:
            f.track_id = -1
        if len(out):
            for i, tid in zip(out.data["index"], out.tracker_id):
                if tid >= 0:
                    face = faces[int(i)]
                    face.track_id = int(tid) + 1  # people count from 1
                    track = self.tracks.setdefault(face.track_id, Track(face.track_id, face.source))
                    track.last_seen = time
        return faces

    def ended(self, time: float) -> list[Track]:
        """Tracks not seen for longer than lost_seconds at stream time `time`, by id; each handed over once."""
        done = sorted(t for t, track in self.tracks.items() if time - track.last_seen > self.lost_seconds)
        return [self.tracks.pop(t) for t in done]

    def finish(self) -> list[Track]:
        """End every open track (end of input, disconnect), by id."""
        return [self.tracks.pop(t) for t in sorted(self.tracks)]
