"""`enhance-faces demo`: a short CCTV-like clip made from real faces that ship inside insightface's wheel.

Six people from insightface's sample group photo walk across a dim synthetic room at 18–40 px
face height, with sensor noise, slight blur and H.264 compression: small, real faces without
needing any data set.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ..core.errors import EnhanceError
from ..core.yuv import from_bgr

W, H, FPS, SECONDS = 640, 360, 25, 6


def _sample_photo() -> np.ndarray:
    import insightface

    path = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    image = cv2.imread(str(path))
    if image is None:
        raise EnhanceError(f"insightface's sample photo is missing: {path}")
    return image


def _people(photo: np.ndarray) -> list[np.ndarray]:
    """Head-and-shoulders patches (BGRA, soft-edged) around the faces of the group photo."""
    # Face boxes of t1.jpg, found once with SCRFD; fixed so the demo needs no detector to build.
    boxes = [(463, 266, 572, 415), (906, 59, 1011, 206), (745, 342, 847, 480),
             (55, 260, 168, 397), (1130, 272, 1227, 400), (270, 144, 371, 270)]
    patches = []
    for x1, y1, x2, y2 in boxes:
        w, h = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        px1, px2 = int(max(cx - 0.9 * w, 0)), int(min(cx + 0.9 * w, photo.shape[1]))
        py1, py2 = int(max(cy - 0.9 * h, 0)), int(min(cy + 1.4 * h, photo.shape[0]))
        patch = photo[py1:py2, px1:px2]
        mask = np.zeros(patch.shape[:2], np.float32)
        cv2.ellipse(mask, (patch.shape[1] // 2, patch.shape[0] // 2),
                    (patch.shape[1] // 2 - 2, patch.shape[0] // 2 - 2), 0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), patch.shape[1] / 12)
        patches.append(np.dstack([patch, (mask * 255).astype(np.uint8)]))
    return patches


def _room(rng: np.random.Generator) -> np.ndarray:
    """A dim office: gradient walls, a floor, a few desks and windows."""
    y = np.linspace(0, 1, H, dtype=np.float32)[:, None]
    base = (70 + 40 * y) * np.ones((H, W), np.float32)
    room = np.dstack([base * 0.95, base, base * 1.05]).clip(0, 255).astype(np.uint8)
    cv2.rectangle(room, (0, 250), (W, H), (60, 70, 80), -1)
    for x in (40, 260, 480):
        cv2.rectangle(room, (x, 40), (x + 110, 140), (150, 160, 165), -1)
        cv2.rectangle(room, (x, 270), (x + 140, 300), (40, 55, 75), -1)
    return room


def paste(frame: np.ndarray, p: np.ndarray, cx: float, cy: float) -> None:
    """Blend a BGRA patch into `frame` by its alpha, centred at (cx, cy), clipped at the frame's edges
    (also the GPU job's synthetic cameras, `lab/gpu_cameras.py`)."""
    ph, pw = p.shape[:2]
    x1, y1 = int(cx - pw / 2), int(cy - ph / 2)
    fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x1 + pw, frame.shape[1]), min(y1 + ph, frame.shape[0])
    if fx2 <= fx1 or fy2 <= fy1:
        return
    sub = p[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1]
    alpha = sub[..., 3:4].astype(np.float32) / 255
    region = frame[fy1:fy2, fx1:fx2].astype(np.float32)
    frame[fy1:fy2, fx1:fx2] = (alpha * sub[..., :3] + (1 - alpha) * region).astype(np.uint8)


def make_demo_clip(path: Path, seed: int = 7) -> Path:
    """Write the demo clip (H.264 mp4) to `path` and return it."""
    rng = np.random.default_rng(seed)
    people = _people(_sample_photo())
    room = _room(rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Each walker: start/end centre and start/end face height in px.
    walks = [((40, 200), (250, 215), 20, 28), ((610, 190), (410, 205), 22, 32), ((110, 100), (150, 250), 18, 40),
             ((560, 90), (590, 250), 19, 38), ((330, 120), (240, 130), 24, 26), ((420, 280), (470, 170), 36, 24)]
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "28", "preset": "veryfast"}
        n = FPS * SECONDS
        for i in range(n):
            t = i / (n - 1)
            frame = room.copy()
            for patch, (a, b, h0, h1) in zip(people, walks):
                face_h = h0 + (h1 - h0) * t
                scale = face_h / (patch.shape[0] / 2.3)
                p = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                paste(frame, p, a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
            frame = cv2.GaussianBlur(frame, (0, 0), 0.6)
            noise = rng.normal(0, 4.0, frame.shape).astype(np.float32)
            frame = (frame.astype(np.float32) + noise).clip(0, 255).astype(np.uint8)
            vf = from_bgr(frame)
            vf.pts, vf.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path
