"""`prepare-video`: training sequences made the way the pipeline sees faces.

High-resolution video — the training split of the talking-head clips, and CelebA stills turned into short
clips with camera-like motion (drift, zoom, a small rotation) — is shrunk as a camera's sensor would (area,
optional optics blur), given sensor noise, and encoded as video (H.264 or H.265 at a random CRF and GOP).
The pipeline's own detector and aligner then run **on the low-res frames**, so the generator inputs carry
the real landmark noise of 14–44 px faces; the 128 px target is cut from the high-res frame through the
same transform (`truth.Shrink`). Consecutive frames stay together as sequences (track fusion trains on
them).

Cache (`OUT/<name>.npz`, no pickle): per frame its sequence id, frame number, entry size, face height,
the low-res input (`lr16`/`lr32`/`lr64` hold the frames of each entry, `lr_row` points into them), the
128 px target as JPEG bytes (`hr_jpeg`, `hr_offset`), and its PFSR attention map (uint8 64×64).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

from ...core.config import AlignConfig, DetectConfig
from ...core.errors import InputError
from ...core.geometry import ENTRIES
from ...core.models import find_model
from ...stages.align import Aligner
from ...stages.detect import Detector
from ..truth import Shrink, encode, plan_shrink, read_frames, video_rate
from .losses import attention_map, load_fan

_LOG = logging.getLogger(__name__)


FRAME = (192, 192)  # camera frame of a training clip: the detector sees it at native scale, as in a 640×360 run


@dataclass
class Render:
    """How one clip is turned into camera video: drawn at random, reproducible from its seed."""

    face_px: float
    crf: int
    codec: str
    gop: int
    blur: float  # optics blur sigma in low-res pixels (0 = none)
    noise: float  # sensor noise sigma (0–255) added before encoding
    center: tuple[float, float]

    @staticmethod
    def draw(rng: np.random.Generator, face_px: tuple[float, float], crf: tuple[int, int]) -> "Render":
        return Render(
            face_px=float(np.exp(rng.uniform(np.log(face_px[0]), np.log(face_px[1])))),
            crf=int(rng.integers(crf[0], crf[1] + 1)),
            codec="libx265" if rng.random() < 0.3 else "libx264",
            gop=int(rng.choice([12, 25, 50, 100])),
            blur=float(rng.uniform(0.3, 0.8)) if rng.random() < 0.4 else 0.0,
            noise=float(rng.uniform(1.0, 5.0)) if rng.random() < 0.5 else 0.0,
            center=(float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65))),
        )


def pseudo_clip(still: np.ndarray, rng: np.random.Generator, frames: int) -> list[np.ndarray]:
    """A still face photo as a short clip: on a blurred surround, drifting, zooming and turning a little."""
    h, w = still.shape[:2]
    pad = max(h, w)
    canvas = cv2.copyMakeBorder(still, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 12)
    canvas[pad : pad + h, pad : pad + w] = still
    c = np.array([canvas.shape[1] / 2, canvas.shape[0] / 2])
    size = (int(w * 1.8) // 2 * 2, int(h * 1.8) // 2 * 2)
    shift0, shift1 = rng.uniform(-0.06, 0.06, 2) * w, rng.uniform(-0.06, 0.06, 2) * w
    zoom0, zoom1 = 1 + rng.uniform(-0.04, 0.04, 2)
    rot0, rot1 = rng.uniform(-3, 3, 2)
    out = []
    for t in np.linspace(0, 1, frames):
        ease = t * t * (3 - 2 * t)
        m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), rot0 + (rot1 - rot0) * ease, zoom0 + (zoom1 - zoom0) * ease)
        m[:, 2] += np.array(size) / 2 - c + shift0 + (shift1 - shift0) * ease
        out.append(cv2.warpAffine(canvas, m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE))
    return out


class Builder:
    """Renders clips into camera video, detects and aligns on it, and collects (input, target) frames."""

    def __init__(self, models_dir: str | None, max_downscale: float = AlignConfig.max_downscale, jpeg_quality: int = 90,
                 log: Callable[[str], None] = _LOG.info) -> None:
        self.detector = Detector(DetectConfig(input_size=max(FRAME), min_face=6), models_dir)
        self.hr_detector = Detector(DetectConfig(input_size=320, small_faces=0.0), models_dir)
        self.aligner = Aligner(AlignConfig(list(ENTRIES), max_downscale))
        self.fan = load_fan(find_model("fan68_compressed.pth", models_dir))
        self.quality = jpeg_quality
        self.log = log
        self.rows: dict[str, list] = {k: [] for k in ("seq", "frame", "entry", "face_px", "hr", "lr")}
        self.sequences = 0
        self.missed = 0

    def face_height(self, frames: list[np.ndarray]) -> float | None:
        picks = (0, len(frames) // 2, len(frames) - 1) if len(frames) > 10 else (0,)
        found = [self.hr_detector(frames[i]) for i in picks]
        heights = [f[0].height for f in found if f]
        return float(np.median(heights)) if heights else None

    def add(self, hr_frames: list[np.ndarray], rate: Fraction, render: Render, work: Path) -> int:
        """One clip rendered one way; returns the number of frames kept."""
        face_h = self.face_height(hr_frames)
        if face_h is None:
            return 0
        h, w = hr_frames[0].shape[:2]
        try:
            shrink = plan_shrink(w, h, face_h, render.face_px, FRAME, render.center)
        except ValueError:
            return 0
        rng = np.random.default_rng(int(render.face_px * 1000) + render.crf)

        def camera() -> Iterator[np.ndarray]:
            for f in hr_frames:
                lr = shrink.apply(f, render.blur)
                if render.noise:
                    lr = np.clip(lr + rng.normal(0, render.noise, lr.shape), 0, 255).astype(np.uint8)
                yield lr

        path = work / "clip.mp4"
        encode(camera(), path, rate, render.crf, render.codec, render.gop, preset="veryfast")
        expect = self._expected_boxes(hr_frames, shrink)
        seq = self.sequences
        kept = 0
        for i, lr in enumerate(read_frames(path)):
            face = self._match(self.detector(lr), expect[i] if i < len(expect) else None)
            if face is None:
                self.missed += 1
                continue
            self.aligner(lr, face)
            self.rows["seq"].append(seq)
            self.rows["frame"].append(i)
            self.rows["entry"].append(face.entry)
            self.rows["face_px"].append(face.height)
            self.rows["hr"].append(shrink.truth(hr_frames[i], face.matrix))
            self.rows["lr"].append(face.lr)
            kept += 1
        self.sequences += 1
        return kept

    def _expected_boxes(self, hr_frames: list[np.ndarray], shrink: Shrink) -> list[np.ndarray | None]:
        """Where the face is in each camera frame, from the high-res detection (to pick the right detection)."""
        a = shrink.hr_to_lr()
        out: list[np.ndarray | None] = []
        last = None
        for i, f in enumerate(hr_frames):
            if i % 15 == 0 or last is None:
                found = self.hr_detector(f)
                if found:
                    b = found[0].box
                    last = np.array([a[0, 0] * b[0] + a[0, 2], a[1, 1] * b[1] + a[1, 2],
                                     a[0, 0] * b[2] + a[0, 2], a[1, 1] * b[3] + a[1, 2]])
            out.append(last)
        return out

    @staticmethod
    def _match(faces: list, expect: np.ndarray | None):
        if not faces or expect is None:
            return None
        c = (expect[:2] + expect[2:]) / 2
        h = expect[3] - expect[1]
        best = min(faces, key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - c))
        return best if np.linalg.norm((best.box[:2] + best.box[2:]) / 2 - c) < 0.5 * h else None

    def save(self, path: Path) -> dict:
        """Write the cache; returns counts."""
        r = self.rows
        if not r["seq"]:
            raise InputError("no training frames were made (no faces found in the rendered clips)")
        hr = np.stack(r["hr"])
        att = []
        for i in range(0, len(hr), 64):
            x = torch.from_numpy(hr[i : i + 64, :, :, ::-1].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
            att.append((attention_map(self.fan, x).numpy() * 255).round().astype(np.uint8))
        blobs = [cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, self.quality])[1].ravel() for im in hr]
        offsets = np.cumsum([0] + [len(b) for b in blobs])
        entry = np.array(r["entry"], np.int16)
        lr_row = np.zeros(len(entry), np.int64)
        per_entry = {}
        for e in ENTRIES:
            idx = np.flatnonzero(entry == e)
            lr_row[idx] = np.arange(len(idx))
            per_entry[f"lr{e}"] = (np.stack([r["lr"][i] for i in idx]) if len(idx)
                                   else np.zeros((0, e, e, 3), np.uint8))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, seq=np.array(r["seq"], np.int32), frame=np.array(r["frame"], np.int32), entry=entry,
            face_px=np.array(r["face_px"], np.float32), lr_row=lr_row, hr_jpeg=np.concatenate(blobs),
            hr_offset=offsets.astype(np.int64), attention=np.concatenate(att), **per_entry,
        )
        return {"frames": len(entry), "sequences": self.sequences, "missed": self.missed,
                **{f"entry{e}": int((entry == e).sum()) for e in ENTRIES}, "mb": path.stat().st_size / 1e6}


def prepare_video(clips: list[Path], stills: list[Path], out: Path, models_dir: str | None, renders: int = 4,
                  still_frames: int = 6, face_px: tuple[float, float] = (14.0, 44.0), crf: tuple[int, int] = (20, 34),
                  max_frames: int = 0, seed: int = 0, max_downscale: float = AlignConfig.max_downscale, name: str = "train",
                  log: Callable[[str], None] = _LOG.info) -> dict:
    """Build one cache from high-res clips (each rendered `renders` times) and stills (one pseudo-clip each)."""
    b = Builder(models_dir, max_downscale, log=log)
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for ci, clip in enumerate(clips):
        frames = list(read_frames(clip))
        if max_frames:
            frames = frames[:max_frames]
        rate = video_rate(clip)
        for k in range(renders):
            rng = np.random.default_rng([seed, ci, k])
            r = Render.draw(rng, face_px, crf)
            # long clips are cut into windows so every rendering sees other frames at other settings
            n = len(frames)
            span = min(n, 120)
            start = int(rng.integers(0, max(1, n - span + 1)))
            kept = b.add(frames[start : start + span], rate, r, work)
            log(f"  {clip.name} render {k}: face {r.face_px:.1f}px crf {r.crf} {r.codec} blur {r.blur:.2f} "
                f"noise {r.noise:.1f} → {kept}/{span} frames")
    for si, p in enumerate(stills):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            continue
        rng = np.random.default_rng([seed, 1_000_000 + si])
        b.add(pseudo_clip(img, rng, still_frames), Fraction(25), Render.draw(rng, face_px, crf), work)
        if (si + 1) % 250 == 0:
            log(f"  stills {si + 1}/{len(stills)}: {len(b.rows['seq'])} frames, {b.missed} missed, "
                f"{(time.time() - t0) / 60:.1f} min")
    counts = b.save(out / f"{name}.npz")
    log(f"{name}: {counts['frames']} frames in {counts['sequences']} sequences ({counts['missed']} frames without "
        f"a detection), entries 16/32/64: {counts['entry16']}/{counts['entry32']}/{counts['entry64']}, "
        f"{counts['mb']:.1f} MB")
    return counts
