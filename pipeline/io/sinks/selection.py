"""Which observations a track shows: the best K by quality, skipping near-duplicates of one already chosen
(SSIM of the originals at or above `gallery.dedupe`). The track writer and the report's gallery use this one
rule, so both show the same crops."""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import cv2
import numpy as np

T = TypeVar("T")


def ssim(a: np.ndarray, b: np.ndarray, size: int = 32) -> float:
    """Mean SSIM of two crops (grey, resized to size×size): 1 for identical pictures."""
    def prep(x: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(x, cv2.COLOR_BGR2GRAY) if x.ndim == 3 else x
        interp = cv2.INTER_AREA if g.shape[0] > size else cv2.INTER_LINEAR
        return cv2.resize(g, (size, size), interpolation=interp).astype(np.float64)

    x, y = prep(a), prep(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def mu(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (7, 7), 1.5)

    mx, my = mu(x), mu(y)
    vx, vy, cxy = mu(x * x) - mx * mx, mu(y * y) - my * my, mu(x * y) - mx * my
    return float((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))).mean())


def select(cands: Sequence[T], k: int, quality: Callable[[T], float],
           image: Callable[[T], np.ndarray | None], dedupe: float) -> tuple[list[T], list[T]]:
    """The best `k` by quality, skipping any whose original is a near-duplicate of one already chosen.

    Returns (chosen in quality order, skipped near-duplicates). `dedupe` ≥ 1 turns de-duplication off.
    """
    chosen: list[T] = []
    imgs: list[np.ndarray] = []
    dupes: list[T] = []
    for c in sorted(cands, key=lambda c: -quality(c)):
        if len(chosen) >= k:
            break
        img = image(c)
        if img is not None and dedupe < 1.0 and any(ssim(img, o) >= dedupe for o in imgs):
            dupes.append(c)
            continue
        chosen.append(c)
        if img is not None:
            imgs.append(img)
    return chosen, dupes
