"""`run.py fit-restore`: fit the codec-restoration filter of `pipeline/restore.py` on the training people.

Each training clip is rendered as `prepare-video` renders it for the generator (`sequences.Render`: the whole
frame shrunk so the face is 14–44 px, optional optics blur and sensor noise, H.264 or H.265 at CRF 20–34 and a
random GOP), and the filter is fitted by least squares from the coded camera pixels around the face to the
same camera's frame without codec, noise or blur.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..restore import MARGIN, RADIUS, RIDGE, LeastSquares, Restorer


@dataclass
class FitPlan:
    """How `fit_restorer` renders the training clips (the training cache's camera model)."""

    renders: int = 8  # camera renderings of each clip
    every: int = 2  # frames between the ones fitted on
    face_px: tuple[float, float] = (14.0, 44.0)
    crf: tuple[int, int] = (20, 34)
    seed: int = 0


def fit_restorer(clips: list[Path], out: Path, models_dir: str | None, plan: FitPlan = FitPlan(),
                 log: Callable[[str], None] = print) -> dict:
    """Fit the filter on `clips` (each rendered `plan.renders` ways, as `prepare-video` renders them) and write
    it to `out` (safetensors, with how it was made in the metadata)."""
    from ..config import DetectConfig
    from ..detect import Detector
    from ..truth import CCTV_FRAME, encode, plan_shrink, read_frames, video_rate
    from .sequences import Render

    detector = Detector(DetectConfig(input_size=320), models_dir)
    fit = LeastSquares()
    work = out.parent / f".{out.stem}.work"
    work.mkdir(parents=True, exist_ok=True)
    t0, regions = time.time(), 0
    for ci, clip in enumerate(clips):
        frames = list(read_frames(clip))
        boxes = _face_boxes(frames, detector)
        heights = [b[3] - b[1] for b in boxes if b is not None]
        if not heights:
            log(f"  {clip.name}: no face found, skipped")
            continue
        h, w = frames[0].shape[:2]
        for k in range(plan.renders):
            rng = np.random.default_rng([plan.seed, ci, k])
            r = Render.draw(rng, plan.face_px, plan.crf)
            try:
                shrink = plan_shrink(w, h, float(np.median(heights)), r.face_px, CCTV_FRAME, r.center)
            except ValueError:
                continue
            noise_rng = np.random.default_rng([plan.seed, ci, k, 1])

            def camera():
                for f in frames:
                    lr = shrink.apply(f, r.blur)
                    if r.noise:
                        lr = np.clip(lr + noise_rng.normal(0, r.noise, lr.shape), 0, 255).astype(np.uint8)
                    yield lr

            path = work / "clip.mp4"
            encode(camera(), path, video_rate(clip), r.crf, r.codec, r.gop, preset="veryfast")
            a = shrink.hr_to_lr()
            n = 0
            for i, coded in enumerate(read_frames(path)):
                if i % plan.every or boxes[i] is None:
                    continue
                b = boxes[i]
                x0, x1 = a[0, 0] * b[[0, 2]] + a[0, 2]
                y0, y1 = a[1, 1] * b[[1, 3]] + a[1, 2]
                grow = 0.5 * (y1 - y0) + MARGIN  # about the canonical crop's footprint around the face box
                xs = slice(max(int(x0 - grow), 0), int(x1 + grow) + 1)
                ys = slice(max(int(y0 - grow), 0), int(y1 + grow) + 1)
                fit.add(coded[ys, xs], shrink.apply(frames[i])[ys, xs])
                n += 1
            regions += n
            log(f"  {clip.name} render {k}: face {r.face_px:.1f}px {r.codec} crf {r.crf} gop {r.gop} blur {r.blur:.2f} "
                f"noise {r.noise:.1f} → {n} faces ({(time.time() - t0) / 60:.1f} min)")
    meta = {"name": out.stem, "radius": str(RADIUS), "ridge": str(RIDGE), "clips": json.dumps([c.stem for c in clips]),
            "plan": json.dumps(plan.__dict__), "faces": str(regions), "pixels": str(fit.pixels)}
    Restorer.from_fit(*fit.solve()).save(out, meta)
    (work / "clip.mp4").unlink(missing_ok=True)
    work.rmdir()
    return {"faces": regions, "pixels": fit.pixels, "minutes": (time.time() - t0) / 60}


def _face_boxes(frames: list[np.ndarray], detector, every: int = 15) -> list[np.ndarray | None]:
    """The largest face's box in each high-res frame, detected every `every` frames and held in between."""
    out: list[np.ndarray | None] = []
    last = None
    for i, f in enumerate(frames):
        if i % every == 0 or last is None:
            found = detector(f)
            if found:
                last = max(found, key=lambda x: x.height).box.astype(np.float64)
        out.append(last)
    return out
