"""The Python API: faces from frames in a notebook or a script, nothing written to disk.

    from pipeline import FaceEnhancer, to_detections

    fe = FaceEnhancer(models="models/", device="cpu")
    faces = fe.process_frame(bgr)          # detect, track across calls, align, enhance per the policy
    faces = fe.process_image(photo)        # a photo: every face aligned and enhanced, no tracking
    detections = to_detections(faces)      # sv.Detections: tracker_id, data["keypoints"], data["enhanced"], …
                                           # (tiles stay in `faces`; to_detections(faces, tiles="array") has them)
    tiles = fe.enhance_crops([crop])       # 128×128 BGR reconstructions, marked "AI-enhanced"

It runs the same stages (`Stages`) and the same per-frame logic (`FaceFlow`: tracker, policy, fusion
window) as `enhance-faces process`; only the sinks differ: records are handed back instead of files and events.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .core.config import Config, EventsConfig, load_config
from .core.draw import mark_enhanced
from .core.geometry import CROP
from .core.runstats import RunStats, Timings
from .core.types import Face, Frame, Track
from .io.records import Observation
from .run.build import Stages
from .run.flow import FaceFlow
from .stages.align import choose_entry, warp
from .stages.enhance.confidence import low_confidence

if TYPE_CHECKING:
    import supervision as sv

log = logging.getLogger(__name__)

ENDED_KEPT = 1000  # ended tracks waiting for `pop_ended`; older ones are let go (memory stays bounded)
DEFAULT_FPS = 25.0  # frame times when neither a rate nor times were given (said once, as a warning)


def frame_rate(fps: Any) -> tuple[float | None, str]:
    """(frames per second, where it came from) for `FaceEnhancer(fps=…)`: a number, an `sv.VideoInfo` (or
    anything with `.fps`), a video file's path (its container's rate), or None (unknown)."""
    if fps is None:
        return None, "unknown"
    if hasattr(fps, "fps"):
        rate, origin = getattr(fps, "fps"), f"{type(fps).__name__}.fps"
    elif isinstance(fps, (str, Path)):
        from .core.config import SourceConfig
        from .io.sources.probe import open_source

        with open_source(str(fps), SourceConfig()) as source:
            rate, origin = source.fps, f"the video {Path(fps).name}"
    else:
        rate, origin = fps, "given"
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        rate = float("nan")
    if not rate > 0:
        raise ValueError(f"fps must be positive, got {rate!r} ({origin})")
    return rate, origin


def _bgr(image: Any, what: str) -> np.ndarray:
    """An HxWx3 uint8 BGR picture, or a one-line ValueError saying what it is instead."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 1:
        raise ValueError(f"{what}: expected an HxWx3 uint8 BGR image, got {a.dtype} with shape {a.shape}")
    return a


class FaceEnhancer:
    """Detect, track, align and enhance faces in frames you pass in, one stream at a time.

    `models`: folder with the detector (else `$ENHANCE_MODELS`, else insightface's folder). `device`:
    auto | cpu | cuda | cuda:N (None: the config's). `config`: a YAML file or a `Config`; `settings`:
    `key=value` overrides as `--set` takes them (e.g. "detect.threshold=0.4"); `policy`: which faces the
    generator gets (`best_k`, `every_n`, `all`, `none`). `fps`: the stream's rate, for frame times when
    `process_frame` gets none and for the tracker's clock: a number, an `sv.VideoInfo`
    (`sv.VideoInfo.from_video_path(path)`) or the video's path; `fps_from` says which it was. Without it,
    frame times assume 25 fps and the first `process_frame` without `time` says so (a warning): a 29.97 fps
    clip would otherwise get times 20 % too late. `process_image` is for photos, which no tracker links.
    No events are sent and no files written.
    """

    def __init__(self, models: str | Path | None = None, device: str | None = None, *,
                 config: str | Path | Config | None = None, settings: Iterable[str] = (), policy: str | None = None,
                 fps: float | Any = None, source: str = "frames") -> None:
        overrides = [*settings, *([f"device={device}"] if device else []),
                     *([f"enhance.policy={policy}"] if policy else [])]
        if isinstance(config, Config):
            cfg = load_config(None, overrides, saved=dataclasses.asdict(config))
        else:
            cfg = load_config(config, overrides)
        cfg.events = EventsConfig()  # records are handed back here, not published
        rate, self.fps_from = frame_rate(fps)
        self.cfg, self.fps, self.source = cfg, rate or DEFAULT_FPS, source
        self._warned_fps = rate is not None
        self.stages = Stages(cfg, models, progress=False)
        self.stats, self.timings = RunStats(), Timings()
        self.flow = FaceFlow(self.stages, self.fps, live=False, stats=self.stats, timings=self.timings)
        self._index = 0
        self._ended: deque[Track] = deque(maxlen=ENDED_KEPT)

    # ------------------------------------------------------------------ frames

    def process_frame(self, image: np.ndarray, time: float | None = None) -> list[Face]:
        """The faces in one BGR frame (largest first), tracked across calls.

        Each `Face` has `box`, `kps`, `score`, `track_id` (-1 until a track is confirmed), and for tracked
        faces `crop` (128×128 aligned camera pixels), `lr`, `entry`, `quality`; `enhanced` (128×128 BGR,
        unmarked) when the policy enhanced it now. Faces the policy keeps for later are enhanced when their
        track ends (see `pop_ended`/`finish`), in place. The track holds each face once, so a face's pixels
        (`crop`, `lr`, `enhanced`) stay until the next call only when its track does not keep the face for
        the generator: copy them to keep them longer. `time`: seconds on the stream's clock (default: frame
        count / fps).
        """
        image = _bgr(image, "process_frame")
        if time is None and not self._warned_fps:
            self._warned_fps = True
            log.warning("no frame rate given: frame times assume %g fps; pass FaceEnhancer(fps=…) a number, an "
                        "sv.VideoInfo or the video's path, or process_frame(time=…)", DEFAULT_FPS)
        t = self._index / self.fps if time is None else float(time)
        frame = Frame(image=image, index=self._index, time=t, source=self.source)
        self._index += 1
        step = self.flow.step(frame)
        self._ended.extend(step.ended)
        return step.faces

    def process_image(self, image: np.ndarray) -> list[Face]:
        """The faces in one photo, each aligned and (unless `enhance.policy: none`) enhanced; no tracking,
        so `track_id` is -1 (a track is confirmed only at its second sighting in a stream). A face the camera
        resolves better than the generator could (`Face.resolved`) is returned as captured, not enhanced."""
        image = _bgr(image, "process_image")
        with self.timings("detect"):
            faces = [] if min(image.shape[:2]) < self.cfg.detect.min_face else self.stages.detector(image)
        for f in faces:
            f.source = self.source
            self.stages.aligner(image, f)
        todo = [f for f in faces if not f.resolved]
        if todo and self.stages.enhancer is not None:
            with self.timings("enhance"):
                self.stages.enhancer(todo)
        return faces

    @property
    def tracks(self) -> dict[int, Track]:
        """The open tracks by id."""
        return self.flow.tracks

    def pop_ended(self) -> list[Track]:
        """Tracks that ended (unseen for `track.lost_seconds`) since the last call, their kept faces
        enhanced (`track.enhanced`: best first)."""
        out = list(self._ended)
        self._ended.clear()
        return out

    def finish(self) -> list[Track]:
        """End every open track (the stream is over) and return all not yet popped; the next frame starts
        a new stream with fresh track ids."""
        self._ended.extend(self.flow.finish())
        self._index = 0
        return self.pop_ended()

    # ------------------------------------------------------------------ crops

    def enhance_crops(self, crops: Sequence[np.ndarray], kps: Sequence[Any] | None = None,
                      mark: bool = True) -> list[np.ndarray]:
        """128×128 BGR reconstructions of face crops.

        Without `kps` each crop is taken as aligned to the canonical template (a `Face.crop`, or any crop
        cut the same way), at whatever size the camera gave it. With `kps` (5 points per crop, in its pixels:
        eyes, nose, mouth corners, as SCRFD and insightface give them) each crop is aligned first, so a loose
        crop or a whole frame works. `mark`: stamp the "AI-enhanced" label on each, as every file gets.
        """
        if self.stages.enhancer is None:
            raise ValueError("enhancement is off (enhance.policy: none)")
        if kps is not None and len(kps) != len(crops):
            raise ValueError(f"enhance_crops: {len(crops)} crops but {len(kps)} sets of keypoints")
        faces = [self._face(_bgr(c, f"crops[{i}]"), None if kps is None else kps[i]) for i, c in enumerate(crops)]
        with self.timings("enhance"):
            self.stages.enhancer(faces)
        return [mark_enhanced(f.enhanced.copy(), low_confidence(f)) if mark else f.enhanced for f in faces]

    def _face(self, image: np.ndarray, kps: Any) -> Face:
        h, w = image.shape[:2]
        face = Face(box=np.array([0, 0, w, h], np.float32), kps=np.zeros((5, 2), np.float32), score=1.0,
                    source=self.source)
        if kps is not None:
            face.kps = np.asarray(kps, np.float32).reshape(5, 2)
            return self.stages.aligner(image, face)
        face.matrix = np.array([[CROP / w, 0, 0], [0, CROP / h, 0]], np.float64)  # the crop is the canonical square
        # an explicit enhance_crops call is enhanced even where align.resolved says the camera's pixels are better
        face.entry = choose_entry(face.matrix, self.stages.aligner.entries, self.stages.aligner.max_downscale)
        face.crop, face.lr = warp(image, face.matrix, CROP, cubic=True), warp(image, face.matrix, face.entry)
        return face

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Stop the generator's batcher thread (also done when the object is collected)."""
        self.stages.close()

    def __enter__(self) -> FaceEnhancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"FaceEnhancer(policy={self.cfg.enhance.policy!r}, device={self.cfg.device!r}, "
                f"tracks={len(self.tracks)})")


def to_detections(faces: Sequence[Face], tiles: Literal["index", "array"] = "index",
                  mark: bool = True) -> sv.Detections:
    """`faces` as supervision `Detections`: `xyxy`, `confidence`, `class_id` 0, `tracker_id` (-1 while a
    track is unconfirmed), and in `data`: `class_name` ("face"), `keypoints` (N×5×2), `quality`, `entry`,
    `frame`, `time`, `source`, `enhanced` (1 when enhanced, else 0, as faces.csv), `enhanced_confidence`
    (NaN when not enhanced) and `face` (the index into `faces` of each row's `Face`, which holds its
    pixels: `crop`, `lr`, `enhanced`).

    Pixels stay out of `data` by default, so `sv.CSVSink` and `sv.JSONSink` write plain rows;
    `tiles="array"` adds `tile`: the 128×128 enhanced tile (marked "AI-enhanced" unless `mark=False`) or
    None per row."""
    import supervision as sv

    if tiles not in ("index", "array"):
        raise ValueError(f'tiles must be "index" or "array", got {tiles!r}')
    n = len(faces)
    rows = [Observation.of(f).project("sv.Detections") for f in faces]  # the one record, sv's names

    def column(key: str, dtype: Any) -> np.ndarray:
        return np.array([r[key] for r in rows], dtype)

    data: dict[str, np.ndarray] = {
        "class_name": np.array(["face"] * n, dtype="<U4"),
        "keypoints": column("keypoints", np.float32).reshape(n, 5, 2),
        "quality": column("quality", np.float32),
        "entry": column("entry", int),
        "frame": column("frame", int),
        "time": column("time", np.float64),
        "source": column("source", object),
        "enhanced": column("enhanced", int),
        "enhanced_confidence": np.array([np.nan if r["enhanced_confidence"] is None else r["enhanced_confidence"]
                                         for r in rows], np.float32),
        "face": np.arange(n),
    }
    if tiles == "array":
        data["tile"] = np.empty(n, dtype=object)  # filled one by one: np.array would stack same-sized tiles
        for i, f in enumerate(faces):
            data["tile"][i] = None if f.enhanced is None else (
                mark_enhanced(f.enhanced.copy(), low_confidence(f)) if mark else f.enhanced)
    return sv.Detections(
        xyxy=column("xyxy", np.float32).reshape(n, 4),
        confidence=column("confidence", np.float32),
        class_id=np.zeros(n, int),
        tracker_id=column("tracker_id", int),
        data=data,
    )
