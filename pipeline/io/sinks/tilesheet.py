"""Tile sheets: every enhanced observation of a track in a few grid PNGs, not six files per observation.

With `enhance.policy` `all` or `every_n` a track has hundreds or thousands of enhanced observations; one PNG
and one JSON sidecar per tile and kind would make tens of thousands of files for a few minutes of video.
Instead, per track and kind (`original`, `lr`, `enhanced`) the tiles are laid out on grids of up to
`SHEET_TILES` cells, `tiles_<kind>_NN.png`, and `tiles.json` says where each observation's tile is on them
and holds its provenance record (the run's settings once, at the top, instead of in every record).
Every enhanced tile on a sheet carries the visible mark, and every sheet the PNG/XMP provenance of its
kind, like a single tile. The LR input keeps its real size (16, 32 or 64 px) in the top-left of its cell.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ...core.draw import mark_enhanced
from ...core.geometry import CROP, ENTRIES
from ...core.types import Face
from ...stages.enhance.confidence import low_confidence
from .. import provenance as prov

COLUMNS = 16
SHEET_TILES = COLUMNS * 16  # 2048×2048 px for 128 px tiles
CELL = {"original": CROP, "lr": max(ENTRIES), "enhanced": CROP}
INDEX = "tiles.json"
SCHEMA = "enhance.tiles/1"
BACKGROUND = 24


def pixels(face: Face, kind: str) -> np.ndarray | None:
    """The tile of one kind for a face: source crop, LR input, or the enhanced face with the mark."""
    if kind == "original":
        return face.crop
    if kind == "lr":
        return face.lr
    return None if face.enhanced is None else mark_enhanced(face.enhanced.copy(), low_confidence(face))


def write_sheets(tdir: Path, track_id: int, faces: list[Face], record: Callable[[Face, str], dict],
                 run_info: dict | None, signer: prov.C2paSigner | None = None) -> tuple[list[Path], dict[int, dict]]:
    """Sheets and tiles.json for the enhanced `faces` of one track; returns the files written and, per
    frame index, each kind's place on them (`{"file", "box": [x, y, w, h]}`, as tiles.json says).

    `record(face, kind)`: the provenance record of that tile (as a single tile's sidecar would hold it).
    """
    faces = sorted(faces, key=lambda f: f.frame_index)
    written: list[Path] = []
    index: list[dict] = []
    placed: dict[int, dict] = {}
    for n, start in enumerate(range(0, len(faces), SHEET_TILES), 1):
        chunk = faces[start : start + SHEET_TILES]
        places: list[dict] = [{} for _ in chunk]
        for kind, cell in CELL.items():
            rows = -(-len(chunk) // COLUMNS)
            grid = np.full((rows * cell, min(len(chunk), COLUMNS) * cell, 3), BACKGROUND, np.uint8)
            for i, f in enumerate(chunk):
                tile = pixels(f, kind)
                if tile is None:
                    continue
                x, y = (i % COLUMNS) * cell, (i // COLUMNS) * cell
                h, w = tile.shape[:2]
                grid[y : y + h, x : x + w] = tile
                places[i][kind] = {"file": f"tiles_{kind}_{n:02d}.png", "box": [x, y, w, h]}
            path = tdir / f"tiles_{kind}_{n:02d}.png"
            rec = record(chunk[0], kind)
            rec.pop("settings", None)
            rec["description"] = (f"{len(chunk)} {kind} tiles of track {track_id}, frames {chunk[0].frame_index}"
                                  f"-{chunk[-1].frame_index}: {rec['description']}; each tile's record is in {INDEX}")
            prov.save_png(path, grid, prov.png_text(rec))
            if signer is not None and rec["ai_generated"]:
                signer.sign(path, rec)
            written.append(path)
        for f, place in zip(chunk, places):
            placed[f.frame_index] = place
            records = {}
            for kind in place:
                records[kind] = record(f, kind)
                records[kind].pop("settings", None)
            index.append({"frame": f.frame_index, "time": round(float(f.time), 4), "tiles": place,
                          "records": records})
    doc = {"schema": SCHEMA, "track": track_id, "columns": COLUMNS, "cell": CELL,
           "provenance": "tiles_enhanced_*.png hold AI-enhanced reconstructions (each marked), not photographs; "
                         "tiles_original_*.png and tiles_lr_*.png hold source pixels.",
           "settings": (run_info or {}).get("settings"), "observations": index}
    path = tdir / INDEX
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return [*written, path], placed
