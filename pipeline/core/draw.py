"""Drawing shared by every picture the run writes: labels, track colours and the "AI-enhanced" mark.

Below the sinks and provenance alike, so the video, the tiles, the galleries and the report all stamp
the same mark the same way. Plain OpenCV on the caller's array.
"""

from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
GREY = (160, 160, 160)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
# Distinct, saturated BGR colours that read on both dark and bright CCTV footage.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)
MARK_LINES = ("AI-enhanced", "not a photograph")  # drawn on pixels (Hershey fonts have no em dash)
MARK_TEXT = "AI-enhanced — not a photograph"  # the same statement in metadata and on the report
LOW_CONFIDENCE_TEXT = "low confidence"  # on tiles the generator could not rest on the camera's pixels
AMBER = (0, 176, 255)  # BGR
BEST_PANEL, BEST_HEAD = 256, 24  # best.png: panels of this size under a label strip of this height


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable colour per track id (grey for untracked faces)."""
    return GREY if track_id < 0 else PALETTE[track_id % len(PALETTE)]


def put_label(
    image: np.ndarray,
    text: str,
    org: tuple[int, int],
    color: tuple[int, int, int] = BLACK,
    text_color: tuple[int, int, int] = WHITE,
    scale: float = 0.45,
    max_width: int | None = None,
) -> tuple[int, int, int, int]:
    """Text on a filled box whose top-left corner is `org`, shrunk to fit max_width; returns the box.

    A filled background keeps labels legible over any footage (and on small 640×360 frames).
    """
    w, h, scale = label_size(text, scale, max_width)
    thick = _thickness(scale)
    th = cv2.getTextSize(text, FONT, scale, thick)[0][1]
    x, y = int(org[0]), int(org[1])
    cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), color, -1)
    cv2.putText(image, text, (x + 2, y + 2 + th), FONT, scale, text_color, thick, cv2.LINE_AA)
    return x, y, x + w, y + h


def label_size(text: str, scale: float = 0.45, max_width: int | None = None) -> tuple[int, int, float]:
    """(width, height, scale) of the label put_label would draw, after shrinking to max_width."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, _thickness(scale))
    if max_width is not None and tw + 4 > max_width and tw > 0:
        scale = max(0.25, scale * (max_width - 4) / tw)
        (tw, th), base = cv2.getTextSize(text, FONT, scale, _thickness(scale))
    return tw + 4, th + base + 4, scale


def _thickness(scale: float) -> int:
    return 1 if scale < 0.75 else 2


def mark_enhanced(tile: np.ndarray, low_confidence: bool = False) -> np.ndarray:
    """Stamp "AI-enhanced / not a photograph" along the bottom-right of a tile (in place); returns it.

    Two short lines so the whole statement fits a 96–128 px tile and leaves the face's upper
    half untouched. Tiles under 48 px get the first line only. A low-confidence reconstruction (too small
    or too damaged to rest on the camera's pixels) also says so, top left, on an amber label.
    """
    h, w = tile.shape[:2]
    if low_confidence:
        put_label(tile, LOW_CONFIDENCE_TEXT, (0, 0), color=AMBER, text_color=BLACK,
                  scale=0.33 * max(1.0, w / 128.0), max_width=w)
    lines = MARK_LINES if min(h, w) >= 48 else MARK_LINES[:1]
    base = 0.33 * max(1.0, w / 128.0)
    scale = min(label_size(t, base, max_width=w)[2] for t in lines)  # one size for both lines
    y = h
    for text in reversed(lines):
        lw, lh, _ = label_size(text, scale, max_width=w)
        y -= lh
        put_label(tile, text, (max(0, w - lw), max(0, y)), scale=scale)
    return tile
