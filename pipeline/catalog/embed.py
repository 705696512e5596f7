"""Face embeddings for the catalogue: the recogniser the people grouping uses (`report.people`), on the
camera's own crops only — never on an enhanced tile, whose detail the generator invented.

A track is embedded from its saved original crops (`fNNNNNN_original.png`: the 128 px aligned crops the
track's folder holds), best first by quality, at most `PER_TRACK`; its search embedding is their
quality-weighted mean, normalised (as the people grouping's). A probe photo is embedded from its largest
face, found by the project's detector and aligned on its five keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.config import Config
from ..core.errors import InputError
from ..core.geometry import ARCFACE_112, CROP, similarity
from ..core.models import find_model, sha256
from ..io.records import TrackRecord
from ..report import people as ppl

PER_TRACK = 16  # crops embedded per track, best by quality (as the people grouping)
DIM = 128


def to_bytes(v: np.ndarray) -> bytes:
    return np.asarray(v, np.float32).tobytes()


def from_bytes(b: bytes) -> np.ndarray:
    return np.frombuffer(b, np.float32)


@dataclass
class TrackFaces:
    """A track's crop embeddings (one row each, with the frame it came from) and their mean."""

    frames: list[int]
    vectors: np.ndarray  # (n, 128) float32, unit rows
    mean: np.ndarray | None
    px: float | None  # median face size behind them


class FaceEmbedder:
    """MobileFaceNet on the camera's crops (`people.model` from `--models`); `model` is its sha256."""

    def __init__(self, cfg: Config, models_dir: str | Path | None = None) -> None:
        path = find_model(cfg.people.model, models_dir)
        self.net = ppl.Embedder(path, cfg.people.threads, cfg.device_of(cfg.people), cfg.people.runtime)
        self.model = sha256(path)
        self.cfg, self.models_dir = cfg, models_dir
        self._detector = None

    def track(self, track_dir: Path, record: TrackRecord) -> TrackFaces:
        """Embeddings of the best original crops saved in `track_dir`."""
        crops, weights, sizes, frames = [], [], [], []
        ranked = sorted((o for o in record.observations if o.files.get("original")), key=lambda o: -o.quality)
        for o in ranked[:PER_TRACK]:
            img = cv2.imread(str(track_dir / o.files["original"]), cv2.IMREAD_COLOR)
            if img is None or img.shape[:2] != (CROP, CROP):
                continue
            crops.append(ppl.crop112(img, np.asarray(o.kps) if o.kps else None))
            weights.append(max(o.quality, 1e-3))
            sizes.append(o.size)
            frames.append(o.frame)
        vectors = self.net(crops)
        mean = ppl.mean_embedding(vectors, weights) if crops else None
        return TrackFaces(frames, vectors, mean, float(np.median(sizes)) if sizes else None)

    def photo(self, path: str | Path) -> np.ndarray:
        """The unit embedding of the largest face in a photo; InputError when it holds none."""
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read the probe photo {path}")
        return self.image(image, str(path))

    def detector(self):
        """The project's face detector (built on first use: only probes need it)."""
        if self._detector is None:
            from ..stages.detect import Detector

            self._detector = Detector(self.cfg.detect, self.models_dir, self.cfg.device_of(self.cfg.detect))
        return self._detector

    def image(self, image: np.ndarray, name: str = "the probe") -> np.ndarray:
        """The unit embedding of the largest face in a BGR image; InputError when it holds none."""
        faces = self.detector()(image)
        if not faces:
            raise InputError(f"no face found in {name}")
        face = faces[0]  # largest first
        m = similarity(np.asarray(face.kps, np.float32).reshape(5, 2), ARCFACE_112)
        aligned = cv2.warpAffine(image, m, (112, 112), flags=cv2.INTER_LINEAR, borderValue=0.0)
        return self.net([aligned])[0]
