"""Annotate: boxes, track labels and "AI-enhanced" insets drawn on each output frame.

The inset sits *beside* the face, never over it, so a viewer always sees the camera's own pixels
for the face and the reconstruction as a clearly labelled, separate picture. Drawing is plain
OpenCV on one copy of the frame, cheap enough to run on every frame on a CPU.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...core.config import OutputConfig
from ...core.draw import BLACK, GREY, WHITE, label_size, mark_enhanced, put_label, track_color
from ...core.types import Face
from ...stages.enhance.confidence import low_confidence


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


class Annotator:
    """Draws every face's box and label, plus an enhanced-face inset beside tracked faces."""

    def __init__(self, cfg: OutputConfig) -> None:
        self.inset_size = cfg.inset_size

    def __call__(self, image: np.ndarray, faces: list[Face], insets: dict[int, Face]) -> np.ndarray:
        """A copy of `image` with the annotations; `insets` maps track id → its latest enhanced Face."""
        out = image.copy()
        H, W = out.shape[:2]
        k = max(1.0, min(H, W) / 540)  # text and lines grow on HD frames; 640×360 keeps the base sizes
        boxes = [self._int_box(f.box, W, H) for f in faces]
        labels: list[tuple[str, tuple[int, int], tuple[int, int, int, int]]] = []
        for face, (x1, y1, x2, y2) in zip(faces, boxes):
            if face.track_id < 0:
                continue
            text = f"#{face.track_id}"
            lw, lh, _ = label_size(text, 0.45 * k)
            ly = y1 - lh - 1  # just above the box; below it if there is no room
            if ly < 0:
                ly = min(y2 + 2, H - lh)
            lx = min(max(0, x1 - 1), max(0, W - lw))
            labels.append((text, (lx, ly), (lx, ly, lx + lw, ly + lh)))

        # Insets in face order; each keeps off every face (hard) and off labels and earlier insets (soft).
        faces_px = [(x1 - 2, y1 - 2, x2 + 3, y2 + 3) for x1, y1, x2, y2 in boxes]
        soft = [r for _, _, r in labels]
        Rect = tuple[int, int, int, int]
        planned: list[tuple[Rect, Rect, np.ndarray, tuple[int, int, int]]] = []
        for face, box in zip(faces, boxes):
            src = insets.get(face.track_id) if face.track_id >= 0 else None
            if src is None or src.enhanced is None:
                continue
            rect = self._place(box, min(self.inset_size, W, H), W, H, faces_px, soft)
            if rect is None:
                continue
            soft.append(rect)
            planned.append((rect, box, src, track_color(face.track_id)))

        for face, (x1, y1, x2, y2) in zip(faces, boxes):
            if face.track_id < 0:
                cv2.rectangle(out, (x1, y1), (x2, y2), GREY, 1)
            else:
                cv2.rectangle(out, (x1, y1), (x2, y2), track_color(face.track_id), 2 if k < 1.5 else 3)
        for face, (text, org, _) in zip((f for f in faces if f.track_id >= 0), labels):
            color = track_color(face.track_id)
            put_label(out, text, org, color=color, text_color=BLACK if sum(color) > 450 else WHITE, scale=0.45 * k)

        for (x1, y1, x2, y2), (bx1, by1, bx2, by2), src, color in planned:
            # A connector in the track's colour when the inset had to move away from its face.
            cx = min(max((bx1 + bx2) // 2, x1), x2 - 1)
            cy = min(max((by1 + by2) // 2, y1), y2 - 1)
            fx, fy = min(max(cx, bx1), bx2), min(max(cy, by1), by2)
            if abs(fx - cx) + abs(fy - cy) > 8:
                cv2.line(out, (cx, cy), (fx, fy), color, 1, cv2.LINE_AA)
            size = x2 - x1
            tile = src.enhanced
            if tile.shape[0] != size or tile.shape[1] != size:
                interp = cv2.INTER_AREA if size < tile.shape[0] else cv2.INTER_LINEAR
                tile = cv2.resize(tile, (size, size), interpolation=interp)
            out[y1:y2, x1:x2] = mark_enhanced(tile.copy(), low_confidence(src))  # "AI-enhanced / not a photograph"
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, 1)
        return out

    @staticmethod
    def _int_box(box: np.ndarray, W: int, H: int) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
        x1, x2 = max(0, min(x1, W - 1)), max(0, min(x2, W - 1))
        y1, y2 = max(0, min(y1, H - 1)), max(0, min(y2, H - 1))
        return x1, y1, max(x1, x2), max(y1, y2)

    @staticmethod
    def _place(
        box: tuple[int, int, int, int],
        size: int,
        W: int,
        H: int,
        faces: list[tuple[int, int, int, int]],
        soft: list[tuple[int, int, int, int]],
    ) -> tuple[int, int, int, int] | None:
        """A square beside the box (right, left, below, above), inside the frame, covering no face.

        Shrinks the inset (down to 32 px) before it would cover a face; failing that,
        the spot covering the least of other faces, or None (no inset) if only its own face is left. Among face-free spots, the first covering nothing else
        wins, else the one covering the least label/inset area.
        """
        x1, y1, x2, y2 = box
        gap = 4
        fallback, fallback_cost = None, None
        sizes = sorted({s for s in (size, size * 3 // 4, size // 2, 32) if min(32, size) <= s <= size}, reverse=True)
        for s in sizes:
            best, best_cost = None, None
            cands = [
                (x2 + gap, y1), (x1 - gap - s, y1),  # right, left (top-aligned)
                (x2 + gap, y2 - s), (x1 - gap - s, y2 - s),  # right, left (bottom-aligned)
                (x1, y2 + gap), (x1, y1 - gap - s),  # below, above
                (x2 - s, y2 + gap), (x2 - s, y1 - gap - s),
            ]
            for cx, cy in cands:
                cx, cy = min(max(0, cx), W - s), min(max(0, cy), H - s)
                rect = (cx, cy, cx + s, cy + s)
                hard = sum(_overlap(rect, f) for f in faces)
                cost = sum(_overlap(rect, a) for a in soft)
                if hard:  # as a last resort it may cover another face, never its own
                    if not _overlap(rect, (x1, y1, x2 + 1, y2 + 1)) and (fallback_cost is None or hard < fallback_cost):
                        fallback, fallback_cost = rect, hard
                    continue
                if cost == 0:
                    return rect
                if best_cost is None or cost < best_cost:
                    best, best_cost = rect, cost
            if best is not None:
                return best
        return fallback
