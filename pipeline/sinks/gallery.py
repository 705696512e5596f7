"""Gallery: one contact sheet with a row per track, originals beside their enhanced reconstructions.

The original is the generator's low-res input blown up with nearest neighbour, so a reader sees how
few real pixels there were before judging the reconstruction next to it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..types import TrackSummary
from .annotate import AI_LABEL, mark_ai, put_label
from .tracks import lr_upscaled, save_png

HEADER = "Enhanced faces are AI reconstructions, not photographs"
MAX_ROWS = 200
TILE = 96
GAP = 6
LABEL_W = 190
ROW_HEAD = 16  # small caption above each tile
BG = (28, 28, 28)


def _caption(img: np.ndarray, text: str, x: int, y: int) -> None:
    put_label(img, text, (x, y), color=BG, scale=0.38, max_width=TILE)


def _row(track: TrackSummary, per_track: int, width: int) -> np.ndarray:
    row = np.full((ROW_HEAD + TILE + GAP, width, 3), BG, np.uint8)
    obs = track.faces or track.enhanced
    times = [f.time for f in obs] or [0.0]
    n = len({(f.source, f.frame_index) for f in [*track.faces, *track.enhanced]})
    put_label(row, f"#{track.track_id}", (4, ROW_HEAD), color=BG, scale=0.6)
    put_label(row, f"t={min(times):.1f}-{max(times):.1f}s", (4, ROW_HEAD + 26), color=BG, scale=0.42)
    all_enhanced = [f for f in track.enhanced if f.enhanced is not None]
    put_label(row, f"{n} obs, {len(all_enhanced)} enhanced", (4, ROW_HEAD + 46), color=BG, scale=0.42)

    x = LABEL_W
    enhanced = sorted(all_enhanced, key=lambda f: -f.quality)[:per_track]
    if enhanced:
        for f in enhanced:
            orig = lr_upscaled(f, TILE)
            if orig is not None:
                row[ROW_HEAD : ROW_HEAD + TILE, x : x + TILE] = orig
                _caption(row, f"orig {f.entry or ''}px f{f.frame_index}", x, 0)
            x += TILE + 2
            enh = cv2.resize(f.enhanced, (TILE, TILE), interpolation=cv2.INTER_AREA)
            row[ROW_HEAD : ROW_HEAD + TILE, x : x + TILE] = mark_ai(enh)
            _caption(row, AI_LABEL, x, 0)
            x += TILE + GAP * 2
    else:
        best = max((f for f in obs if f.crop is not None or f.lr is not None), key=lambda f: f.quality, default=None)
        if best is not None:
            src = best.crop if best.crop is not None else best.lr
            interp = cv2.INTER_AREA if src.shape[0] > TILE else cv2.INTER_NEAREST
            row[ROW_HEAD : ROW_HEAD + TILE, x : x + TILE] = cv2.resize(src, (TILE, TILE), interpolation=interp)
            _caption(row, "original (not enhanced)", x, 0)
        else:
            put_label(row, "no crop kept", (x, ROW_HEAD + TILE // 2), color=BG, scale=0.42)
    return row


def write_gallery(path: Path, tracks: list[TrackSummary], per_track: int = 3) -> None:
    """Write the contact sheet PNG (rows sorted by track id, at most MAX_ROWS of them)."""
    path = Path(path)
    per_track = max(1, int(per_track))
    width = max(LABEL_W + per_track * (2 * TILE + 2 + 2 * GAP), 560)
    ordered = sorted(tracks, key=lambda t: t.track_id)
    shown, omitted = ordered[:MAX_ROWS], max(0, len(ordered) - MAX_ROWS)

    head = np.full((56, width, 3), BG, np.uint8)
    put_label(head, HEADER, (6, 6), color=(0, 0, 160), scale=0.55, max_width=width - 12)
    put_label(head, "left: camera pixels (low-res input, nearest-neighbour); right: AI-enhanced", (6, 32),
              color=BG, scale=0.42, max_width=width - 12)
    parts: list[np.ndarray] = []
    if not shown:
        msg = np.full((60, width, 3), BG, np.uint8)
        put_label(msg, "No faces found.", (6, 18), color=BG, scale=0.6)
        parts.append(msg)
    if omitted:
        foot = np.full((30, width, 3), BG, np.uint8)
        put_label(foot, f"... {omitted} more tracks omitted (see tracks/ and manifest.json)", (6, 6),
                  color=BG, scale=0.45, max_width=width - 12)
        parts.append(foot)
    row_h = ROW_HEAD + TILE + GAP
    # Rows are drawn straight into one preallocated sheet: no list of row images held at once.
    sheet = np.empty((head.shape[0] + row_h * len(shown) + sum(p.shape[0] for p in parts), width, 3), np.uint8)
    sheet[: head.shape[0]] = head
    y = head.shape[0]
    for t in shown:
        sheet[y : y + row_h] = _row(t, per_track, width)
        y += row_h
    for p in parts:
        sheet[y : y + p.shape[0]] = p
        y += p.shape[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_png(tmp, sheet, {
        "Software": "Enhance",
        "AI-Generated": "true" if any(t.enhanced for t in shown) else "false",
        "Description": "Contact sheet: original crops beside AI-enhanced reconstructions (not photographs)",
        "Tracks": str(len(ordered)),
    })
    tmp.replace(path)
