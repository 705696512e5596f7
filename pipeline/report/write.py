"""The report's files: people.json, gallery.png and report.html, each replaced atomically.

gallery.png shows the first `sheet.MAX_ROWS` tracks (people in order of appearance) and says how many more
report.html holds, so its size and the memory to draw it stay bounded however many tracks a run has; only
those rows' tiles are read, and with a `cache` an unchanged sheet is not drawn again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core.config import Config
from ..core.draw import BEST_HEAD, BEST_PANEL
from ..core.errors import write_error
from . import people as ppl
from .analyse import Analysis, analyse
from .html import render
from .read import read_image
from .sheet import MAX_ROWS, Row, Section, Tile, draw_sheet

REPORT = "report.html"
PEOPLE = "people.json"
GALLERY = "gallery.png"


def write_report(out_dir: str | Path, cfg: Config | None = None, models_dir: str | Path | None = None,
                 cache: dict | None = None) -> Path:
    """Read a finished run (or a folder of runs), group tracks into people, write gallery.png,
    people.json and report.html into out_dir; returns the report's path.

    `cfg`: None uses the settings saved in the run's manifest. `cache`: a dict kept between calls (a live
    run's refreshes): tracks already analysed and an unchanged sheet are not done again. Raises
    EnhanceError when out_dir holds no run, OutputError when a file cannot be written.
    """
    cache = {} if cache is None else cache
    a = analyse(out_dir, cfg, models_dir, cache)
    _replace(a.out / PEOPLE, json.dumps(people_json(a), indent=1))
    _write_sheet(a, cache)
    path = a.out / REPORT
    _replace(path, render(a, GALLERY, PEOPLE))
    return path


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None


def _key_json(k: tuple[str, int]) -> dict:
    return {"run": k[0], "track": k[1]}


def people_json(a: Analysis) -> dict:
    """people.json: every grouping with the similarity behind it."""
    clustering, by_key = a.clustering, a.by_key

    def track(k: tuple[str, int]) -> dict:
        t = by_key[k]
        near = clustering.nearest_outside.get(k)
        return {**_key_json(k), "source": t.source, "first_time": t.first_time, "last_time": t.last_time,
                "embedded_crops": t.n_embedded, "embedded_face_px": round(t.embedded_px, 1),
                "shown_frames": [o.frame for o in t.chosen],
                "hidden_near_duplicates": [o.frame for o in t.dupes],
                "nearest_other": {**_key_json(near[0]), "similarity": near[1]} if near else None}

    return {
        "note": "Similarities are cosine similarities of face embeddings computed on the camera's original crops "
                "(never on enhanced faces). At CCTV face sizes they are hints for an analyst, not identification.",
        "threshold": a.cfg.people.threshold,
        "small_faces": {"under_px": ppl.SMALL_FACE_PX, "extra_similarity_needed": ppl.SMALL_FACE_MARGIN},
        "model": a.model,
        "status": a.note or "grouped",
        "people": [{
            "id": pid,
            "tracks": [track(k) for k in p.members],
            "merges": [{"left": [_key_json(k) for k in m.left], "right": [_key_json(k) for k in m.right],
                        "similarity": m.similarity, "needed": m.needed} for m in p.merges],
        } for pid, p in a.persons],
    }


def _write_sheet(a: Analysis, cache: dict) -> None:
    """gallery.png: the first MAX_ROWS tracks' rows (only their tiles are read); not redrawn if unchanged."""
    out, by_key = a.out, a.by_key
    sections, budget, total = [], MAX_ROWS, sum(len(p.members) for _, p in a.persons)
    shown = []
    for pid, p in a.persons:
        if budget <= 0:
            break
        members = [by_key[k] for k in p.members][:budget]
        budget -= len(members)
        shown.append((pid, p, members))
    key = (a.cfg.output.gallery_per_track, a.cfg.people.threshold, total,
           [(pid, [m.similarity for m in p.merges], [(t.key, [o.frame for o in t.chosen]) for t in members])
            for pid, p, members in shown])
    if cache.get("sheet") == key and (out / GALLERY).is_file():
        return
    for pid, p, members in shown:
        title = f"{pid}: " + ", ".join(by_key[k].label for k in p.members)
        if p.merges:
            title += "  (joined at similarity " + ", ".join(f"{m.similarity:.2f}" for m in p.merges) + ")"
        rows = []
        for t in members:
            lines = [t.label, f"t={t.first_time:.1f}-{t.last_time:.1f}s", *([t.seen] if t.seen else []),
                     f"{t.record.n_observations} obs, {t.record.n_enhanced} enhanced"]
            if t.dupes:
                lines.append(f"{len(t.dupes)} near-duplicate(s) hidden")
            tiles = [Tile(read_image(out, o.files.get("lr") or o.files.get("original")),
                          read_image(out, o.files.get("enhanced_unmarked") or o.files.get("enhanced")),
                          o.frame, o.time, o.entry) for o in t.chosen]
            shown_tiles = [x for x in tiles if x.original is not None or x.enhanced is not None]
            # nothing enhanced (policy none, or every face resolved): the track's best crop as captured
            fallback = None if shown_tiles else read_image(out, t.best_png)
            rows.append(Row(lines, shown_tiles, fallback[BEST_HEAD:, :BEST_PANEL] if fallback is not None else None))
        sections.append(Section(title, rows))
    try:
        draw_sheet(out / GALLERY, sections, a.cfg.output.gallery_per_track,
                   {"Threshold": f"{a.cfg.people.threshold:.2f}"}, more=total - sum(len(m) for *_, m in shown),
                   note="left: camera pixels at their real resolution (nearest-neighbour); right: AI-enhanced. "
                        "Rows grouped by person (face-embedding similarity of the originals; faces under "
                        f"{ppl.SMALL_FACE_PX:.0f} px need {ppl.SMALL_FACE_MARGIN:.2f} more).")
    except OSError as e:
        raise write_error(out / GALLERY, e) from None
    cache["sheet"] = key
