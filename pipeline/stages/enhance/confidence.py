"""How far an enhanced face can be trusted, per tile: said in the output rather than hidden behind a sharp face.

Two things decide it, both measured on what the camera delivered:
- resolution: how many source pixels span the canonical crop (a 12 px face leaves almost everything to the
  generator);
- consistency: the enhanced face shrunk back to the generator's input size must give back the camera's
  pixels. Where it does not, the generator changed what the camera saw (mean absolute difference, 0–255).
The product of the two terms and the detector's confidence is the tile's `confidence` (0–1); below
`LOW` a tile is flagged "low confidence: too small or too damaged to reconstruct faithfully".
"""

from __future__ import annotations

import cv2
import numpy as np

from ...core.geometry import source_span
from ...core.types import Face

SPAN_NONE, SPAN_FULL = 14.0, 40.0  # source pixels across the crop: no trust at or below / full trust at or above
CONSISTENT, INCONSISTENT = 3.0, 12.0  # mean |shrunk enhanced − input| (0–255): compression noise / contradiction
LOW = 0.35  # below this a tile is flagged


def consistency(enhanced: np.ndarray, lr: np.ndarray) -> float:
    """Mean absolute difference (0–255) between the enhanced face area-shrunk to the input size and the input."""
    back = cv2.resize(enhanced, lr.shape[1::-1], interpolation=cv2.INTER_AREA)
    return float(np.abs(back.astype(np.float32) - lr.astype(np.float32)).mean())


def confidence(span: float, mismatch: float, score: float) -> float:
    """0–1 from source pixels across the crop, input mismatch and detector score."""
    res = float(np.clip((span - SPAN_NONE) / (SPAN_FULL - SPAN_NONE), 0.0, 1.0))
    cons = float(np.clip((INCONSISTENT - mismatch) / (INCONSISTENT - CONSISTENT), 0.0, 1.0))
    return round(res * cons * float(np.clip(score, 0.0, 1.0)) ** 0.5, 4)


def low_confidence(face: Face) -> bool:
    """Whether an enhanced face is flagged: too small or too damaged to rest on the camera's pixels."""
    return face.confidence is not None and face.confidence < LOW


def assess(face: Face) -> Face:
    """Fill `consistency` and `confidence` of an enhanced face."""
    if face.enhanced is None or face.lr is None or face.matrix is None:
        return face
    face.consistency = round(consistency(face.enhanced, face.lr), 3)
    face.confidence = confidence(source_span(face.matrix), face.consistency, face.score)
    return face
