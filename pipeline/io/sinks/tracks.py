"""Tracks: per-track folders with the original crop, the low-res input and the enhanced tile side by side.

Every enhanced tile carries its provenance visibly ("AI-enhanced / not a photograph" stamped on its
pixels) and in metadata (PNG text chunks, XMP, a JSON sidecar `<tile>.json`, and a C2PA manifest when
a signing certificate is configured), so a tile copied out of the folder still says what it is.
The original crop and the low-res input are always written next to it, with the same metadata
saying they are source pixels. See `pipeline.io.provenance`.

With tile sheets (`output.tile_files`; by default for `enhance.policy` all and every_n) every enhanced
observation goes onto the track's sheets (`sinks.tilesheet`), whose `tiles.json` holds every tile's
record; only the observations the gallery shows (its own choice: best by quality, near-duplicates
skipped) are also written as single tiles, with their metadata inside the PNG and no sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ...core.config import OutputConfig
from ...core.draw import BEST_HEAD, BEST_PANEL, MARK_TEXT, mark_enhanced, put_label
from ...core.errors import write_error
from ...core.types import Face, Track
from ...stages.enhance.confidence import low_confidence
from .. import provenance as prov
from ..records import Observation, TrackRecord
from .detections import row
from .selection import select
from .tilesheet import write_sheets


def lr_upscaled(face: Face, size: int) -> np.ndarray | None:
    """The generator's low-res input blown up with nearest neighbour, so its real resolution shows (a face the
    camera resolves, never synthesized: its 128 px crop, which holds more of the camera's pixels)."""
    src = face.lr if face.lr is not None and not face.resolved else face.crop
    if src is None:
        src = face.lr
    if src is None:
        return None
    return cv2.resize(src, (size, size), interpolation=cv2.INTER_NEAREST)


def comparison(face: Face, panel: int = BEST_PANEL) -> np.ndarray | None:
    """Original (LR, nearest-neighbour) | enhanced (marked), each labelled; original alone if not enhanced."""
    left = lr_upscaled(face, panel)
    if left is None:
        return None
    panels = [left.copy()]
    labels = ["as captured (resolved: not synthesized)" if face.resolved else
              f"original {face.entry or left.shape[0]}px" if face.lr is not None else "original"]
    if face.enhanced is not None:
        right = cv2.resize(face.enhanced, (panel, panel), interpolation=cv2.INTER_NEAREST)
        panels.append(mark_enhanced(right, low_confidence(face)))
        labels.append(MARK_TEXT)
    gap = 4
    head = BEST_HEAD
    out = np.full((head + panel, len(panels) * panel + (len(panels) - 1) * gap, 3), 32, np.uint8)
    for i, (p, lab) in enumerate(zip(panels, labels)):
        x = i * (panel + gap)
        out[head:, x : x + panel] = p
        put_label(out, lab.replace("—", "-"), (x, 2), color=(32, 32, 32), scale=0.5, max_width=panel)
    return out


def _obs_key(face: Face) -> tuple[str, int]:
    return face.source, face.frame_index


@dataclass
class WrittenTrack:
    """What writing a track produced: the manifest's summary, faces.csv's rows (with each observation's
    enhanced tile file) and `best.png`'s path, all relative to the run folder."""

    summary: dict
    rows: list[dict] = field(default_factory=list)
    best_tile: str | None = None


class TrackWriter:
    """Writes out_dir/tracks/<id>/: tiles per enhanced observation, best.png and track.json (`TrackRecord`).

    Per enhanced observation: `fNNNNNN_original.png` (128 aligned crop of source pixels),
    `fNNNNNN_lr.png` (the generator's low-res input, source pixels), `fNNNNNN_enhanced.png`
    (visibly marked) and, only when `unmarked` is set, `fNNNNNN_enhanced_unmarked.png` (same
    metadata, "Visible-Mark: none"). Each tile has a `.json` sidecar with its provenance record.

    `run_info`: the runner's `info()` dict (generator {name, sha256}, inputs, settings), written into
    every tile's metadata. `signer`: a provenance.C2paSigner to embed a signed C2PA manifest in
    enhanced tiles. `sheets`: every enhanced observation on tile sheets, single tiles only for the
    `output.gallery_per_track` the gallery shows, near-duplicates (SSIM ≥ `dedupe`) skipped
    (`Config.tile_sheets()` decides; never with `unmarked_tiles`, whose files evaluation reads).
    """

    def __init__(self, out_dir: Path, cfg: OutputConfig, run_info: dict | None = None,
                 signer: prov.C2paSigner | None = None, sidecars: bool = True, sheets: bool = False,
                 dedupe: float = 1.0) -> None:
        self.out_dir = Path(out_dir)
        self.save_tiles = cfg.tiles
        self.run_info = run_info
        self.unmarked = cfg.unmarked_tiles
        self.signer = signer
        self.sheets = sheets and not cfg.unmarked_tiles
        self.sidecars = sidecars and not self.sheets  # with sheets, tiles.json holds every tile's record
        self.per_track, self.dedupe = cfg.gallery_per_track, dedupe


    def _singles(self, enhanced: list[Face]) -> list[Face]:
        """The observations written as single tiles: all, or with sheets what the gallery will show."""
        if not self.sheets:
            return enhanced

        return select(enhanced, self.per_track, lambda f: f.quality,
                      lambda f: f.lr if f.lr is not None else f.crop, self.dedupe)[0]

    def _captured(self, track: Track) -> list[Face]:
        """The kept observations shown as the camera captured them (resolved faces, or no generator ran):
        the gallery's choice of them, written as original tiles so that the report, the gallery, track.json
        and the manifest all show (and the report embeds) the same crops."""
        held = [f for f in track.candidates if f.enhanced is None and f.crop is not None]
        return select(held, self.per_track, lambda f: f.quality, lambda f: f.crop, self.dedupe)[0] if held else []

    def write(self, track: Track) -> dict:
        """Write one finished track; returns its summary for the manifest (paths relative to out_dir).

        Raises OutputError naming the file that could not be written."""
        return self.write_track(track).summary

    def write_track(self, track: Track) -> WrittenTrack:
        """`write`, also returning the track's faces.csv rows and its best tile."""
        try:
            return self._write(track)
        except OSError as e:
            raise write_error(e.filename or self.out_dir / "tracks" / str(track.id), e) from None

    def _write(self, track: Track) -> WrittenTrack:
        tdir = self.out_dir / "tracks" / str(track.id)
        tdir.mkdir(parents=True, exist_ok=True)
        files: list[str] = []

        # Every observation once (the kept ones still with their pixels), recorded once: track.json, faces.csv
        # and every tile's provenance are projections of it.
        enhanced = track.enhanced
        enhanced_keys = {_obs_key(f) for f in enhanced}
        ordered = sorted(track.faces, key=lambda f: (f.frame_index, f.time))
        obs = {_obs_key(f): Observation.of(f, _obs_key(f) in enhanced_keys) for f in ordered}

        def record(f: Face, kind: str, visible_mark: bool | None = None) -> dict:
            o = obs.get(_obs_key(f)) or Observation.of(f)  # `best` of a track without observations kept
            return prov.tile_record(kind, o, self.run_info, visible_mark)

        def sheet_record(f: Face, kind: str) -> dict:
            return record(f, kind, True if kind == "enhanced" else None)

        def rel(p: Path) -> str:
            files.append(p.relative_to(self.out_dir).as_posix())
            return p.name

        def tile(name: str, image: np.ndarray, rec: dict, signed: bool = False) -> str:
            paths = prov.write_tile(tdir / name, image, rec, sidecar=self.sidecars,
                                    signer=self.signer if signed else None)
            for p in paths[1:]:
                rel(p)
            return rel(paths[0])

        tiles: dict[tuple[str, int], dict[str, str]] = {}
        places: dict[int, dict] = {}
        best_tile = None
        if self.save_tiles and self.sheets and enhanced:
            written, places = write_sheets(tdir, track.id, enhanced, sheet_record, self.run_info, self.signer)
            for p in written:
                rel(p)
        if self.save_tiles:
            for f in self._singles(enhanced):
                stem = f"f{f.frame_index:06d}"
                names: dict[str, str] = {}
                if f.crop is not None:
                    names["original"] = tile(f"{stem}_original.png", f.crop, record(f, "original"))
                if f.lr is not None:
                    names["lr"] = tile(f"{stem}_lr.png", f.lr, record(f, "lr"))
                names["enhanced"] = tile(f"{stem}_enhanced.png", mark_enhanced(f.enhanced.copy(), low_confidence(f)),
                                         record(f, "enhanced", visible_mark=True), signed=True)
                if self.unmarked:
                    names["enhanced_unmarked"] = tile(
                        f"{stem}_enhanced_unmarked.png", f.enhanced,
                        record(f, "enhanced_unmarked", visible_mark=False), signed=True)
                tiles[_obs_key(f)] = names
            for f in self._captured(track):
                tiles[_obs_key(f)] = {"original": tile(f"f{f.frame_index:06d}_original.png", f.crop,
                                                       record(f, "original"))}

            best = max(enhanced, key=lambda f: f.quality, default=None)
            if best is None:  # nothing enhanced: the best original crop we still have
                best = max((f for f in track.faces if f.crop is not None or f.lr is not None),
                           key=lambda f: f.quality, default=None)
            sheet = comparison(best) if best is not None else None
            if sheet is not None:
                p = tdir / "best.png"
                kind = "enhanced" if best.enhanced is not None else "original"
                rec = record(best, kind, visible_mark=True)
                rec["description"] = ("Comparison: source pixels (left) beside an AI-enhanced reconstruction "
                                      "(right, not a photograph)" if kind == "enhanced" else rec["description"])
                prov.save_png(p, sheet, prov.png_text(rec))
                rel(p)
                best_tile = p.relative_to(self.out_dir).as_posix()

        for key, names in tiles.items():
            obs[key].files = names
        rows = list(obs.values())
        inputs = (self.run_info or {}).get("inputs") or []
        doc = TrackRecord.of(track.id, track.source, rows, len(enhanced),
                             prov.redact(inputs[0]) if inputs else None, prov.generator_of(self.run_info))
        rel(doc.write(tdir / "track.json"))

        folder = tdir.relative_to(self.out_dir).as_posix()

        def enhanced_file(f: Face) -> str:
            single = tiles.get(_obs_key(f), {}).get("enhanced")
            if single:
                return f"{folder}/{single}"
            cell = places.get(f.frame_index, {}).get("enhanced")
            return f"{folder}/{cell['file']}#xywh={','.join(map(str, cell['box']))}" if cell else ""

        faces_rows = [row(obs[_obs_key(f)], enhanced_file(f)) for f in ordered]
        return WrittenTrack({
            "id": track.id,
            "source": track.source,
            "frames": [doc.first_frame, doc.last_frame],
            "first_time": doc.first_time,
            "last_time": doc.last_time,
            **({"first_seen": doc.first_seen, "last_seen": doc.last_seen} if doc.first_seen else {}),
            "n_observations": doc.n_observations,
            "n_enhanced": doc.n_enhanced,
            "files": files,
        }, faces_rows, best_tile)
