"""gallery.png: a contact sheet with a row per track (grouped by person when known), originals beside
their enhanced reconstructions.

The original is the camera's pixels at their real resolution (the generator's low-res input) blown
up with nearest neighbour, so a reader sees how few real pixels there were before judging the
reconstruction next to it. Per track the best K observations by quality are shown, skipping
near-duplicates (SSIM of the originals at or above `gallery.dedupe`).

The report builds the `Row`s from a finished run's files and calls `draw_sheet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..core.draw import MARK_TEXT, mark_enhanced, put_label
from ..core.geometry import CROP
from ..io.provenance import save_png
from ..io.sinks.selection import select, ssim

HEADER = "Enhanced faces are AI reconstructions, not photographs"
MAX_ROWS = 40  # tracks drawn; report.html holds every track (a 40-row sheet is about 1000×6200 px)
TILE = CROP  # tiles drawn at the canonical crop size
GAP = 6
LABEL_W = 190
ROW_HEAD = 16  # small caption above each tile
SECTION_H = 26
BG = (28, 28, 28)

# ------------------------------------------------------------------------------ drawing


@dataclass
class Tile:
    """One observation: source pixels at their real resolution, and the enhanced face if any."""

    original: np.ndarray | None
    enhanced: np.ndarray | None  # unmarked or already marked; the sheet stamps the mark again
    frame: int
    time: float
    entry: int = 0


@dataclass
class Row:
    lines: list[str]  # first line large (e.g. "#12"), the rest small
    tiles: list[Tile] = field(default_factory=list)
    fallback: np.ndarray | None = None  # an original crop when nothing was enhanced


@dataclass
class Section:
    title: str | None  # a person header bar; None: no bar
    rows: list[Row] = field(default_factory=list)


def _caption(img: np.ndarray, text: str, x: int, y: int) -> None:
    put_label(img, text, (x, y), color=BG, scale=0.38, max_width=TILE)


def _draw_row(row: Row, width: int) -> np.ndarray:
    out = np.full((ROW_HEAD + TILE + GAP, width, 3), BG, np.uint8)
    y = ROW_HEAD
    for i, line in enumerate(row.lines):
        put_label(out, line, (4, y), color=BG, scale=0.6 if i == 0 else 0.42, max_width=LABEL_W - 8)
        y += 26 if i == 0 else 20
    x = LABEL_W
    if row.tiles:
        for t in row.tiles:
            if t.original is not None:
                out[ROW_HEAD : ROW_HEAD + TILE, x : x + TILE] = cv2.resize(t.original, (TILE, TILE),
                                                                         interpolation=cv2.INTER_NEAREST)
                px = t.entry or t.original.shape[0]
                _caption(out, f"camera {px}px f{t.frame} {t.time:.1f}s", x, 0)
            x += TILE + 2
            if t.enhanced is not None:
                interp = cv2.INTER_AREA if t.enhanced.shape[0] > TILE else cv2.INTER_LINEAR
                enh = cv2.resize(t.enhanced, (TILE, TILE), interpolation=interp)
                out[ROW_HEAD : ROW_HEAD + TILE, x : x + TILE] = mark_enhanced(enh)
                _caption(out, MARK_TEXT.replace("—", "-"), x, 0)
            x += TILE + GAP * 2
    elif row.fallback is not None:
        src = row.fallback
        interp = cv2.INTER_AREA if src.shape[0] > TILE else cv2.INTER_NEAREST
        out[ROW_HEAD : ROW_HEAD + TILE, x : x + TILE] = cv2.resize(src, (TILE, TILE), interpolation=interp)
        _caption(out, "as captured (not enhanced)", x, 0)
    else:
        put_label(out, "no crop kept", (x, ROW_HEAD + TILE // 2), color=BG, scale=0.42)
    return out


def draw_sheet(path: Path, sections: list[Section], per_track: int, extra_text: dict[str, str] | None = None,
               note: str = "", more: int = 0) -> None:
    """Write the contact sheet PNG: header, then each section's bar and rows (at most MAX_ROWS rows).

    `more`: tracks the caller left out already (they are counted in the "omitted" footer)."""
    path = Path(path)
    per_track = max(1, int(per_track))
    width = max(LABEL_W + per_track * (2 * TILE + 2 + 2 * GAP), 640)
    row_h = ROW_HEAD + TILE + GAP
    total = sum(len(s.rows) for s in sections) + more
    budget = MAX_ROWS
    shown: list[Section] = []
    for s in sections:
        if budget <= 0:
            break
        shown.append(Section(s.title, s.rows[:budget]))
        budget -= len(shown[-1].rows)
    n_shown = sum(len(s.rows) for s in shown)
    omitted = total - n_shown

    head = np.full((56, width, 3), BG, np.uint8)
    put_label(head, HEADER, (6, 6), color=(0, 0, 160), scale=0.55, max_width=width - 12)
    put_label(head, note or "left: camera pixels at their real resolution (nearest-neighbour); right: AI-enhanced",
              (6, 32), color=BG, scale=0.42, max_width=width - 12)
    tail: list[np.ndarray] = []
    if not total:
        msg = np.full((60, width, 3), BG, np.uint8)
        put_label(msg, "No faces found.", (6, 18), color=BG, scale=0.6)
        tail.append(msg)
    if omitted:
        foot = np.full((30, width, 3), BG, np.uint8)
        put_label(foot, f"... {omitted} more tracks omitted (see report.html, tracks/ and manifest.json)", (6, 6),
                  color=BG, scale=0.45, max_width=width - 12)
        tail.append(foot)
    bars = sum(1 for s in shown if s.title)
    # Rows are drawn straight into one preallocated sheet: no list of row images held at once.
    height = head.shape[0] + row_h * n_shown + SECTION_H * bars + sum(p.shape[0] for p in tail)
    sheet = np.empty((height, width, 3), np.uint8)
    sheet[: head.shape[0]] = head
    y = head.shape[0]
    for s in shown:
        if s.title:
            sheet[y : y + SECTION_H] = (60, 45, 20)
            put_label(sheet, s.title, (6, y + 4), color=(60, 45, 20), scale=0.5, max_width=width - 12)
            y += SECTION_H
        for r in s.rows:
            sheet[y : y + row_h] = _draw_row(r, width)
            y += row_h
    for p in tail:
        sheet[y : y + p.shape[0]] = p
        y += p.shape[0]
    any_ai = any(t.enhanced is not None for s in shown for r in s.rows for t in r.tiles)
    text = {
        "Software": "Enhance",
        "AI-Generated": "true" if any_ai else "false",
        "Description": "Contact sheet: original crops beside AI-enhanced reconstructions (not photographs)",
        "Tracks": str(total),
        **(extra_text or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(path, sheet, text)


__all__ = ["Row", "Section", "Tile", "draw_sheet", "select", "ssim"]
