"""Analysis of a finished run: each track's observations worth showing, embeddings of the original crops,
and the tracks grouped into people.

Per track the work is done once: with a `cache` kept between calls (a live run's refreshes), a track
already analysed is not read, chosen or embedded again; only the grouping, which is cheap, is redone. At
most `EMBED_PER_TRACK` originals per track are embedded, so the memory a report needs does not grow with
a track's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.config import Config, load_config
from ..core.devices import DeviceError
from ..core.errors import EnhanceError, ModelNotFound
from ..core.geometry import CROP
from ..core.models import find_model, sha256
from . import people as ppl
from .read import ReportTrack, Run, find_runs, load_run, read_image
from .sheet import select

EMBED_PER_TRACK = 16  # a track's identity: the mean embedding of its best originals by quality


@dataclass
class Analysis:
    """Everything the report shows, computed from a finished run's files."""

    out: Path
    cfg: Config  # the people, gallery and output settings it was made with
    runs: list[Run]
    tracks: list[ReportTrack]  # in order of first appearance
    persons: list[tuple[str, ppl.Person]]  # ("P1", Person) …
    clustering: ppl.Clustering
    model: dict | None  # embedding model {name, sha256}, None when not used
    note: str  # why people were not grouped, if they were not
    problems: list[str]  # unreadable files, shown in the report

    @property
    def by_key(self) -> dict[tuple[str, int], ReportTrack]:
        return {t.key: t for t in self.tracks}


def analyse(out_dir: str | Path, cfg: Config | None = None, models_dir: str | Path | None = None,
            cache: dict | None = None) -> Analysis:
    """Load the run(s) in out_dir, pick each track's observations, embed and group tracks into people.

    `cfg`: None rebuilds the config from the settings saved in the run's manifest. `cache`: a dict kept
    between calls, so that a track is analysed once. Raises EnhanceError when out_dir holds no run.
    """
    cache = {} if cache is None else cache
    out = Path(out_dir)
    if not out.is_dir():
        raise EnhanceError(f"output folder not found: {out}")
    run_dirs = find_runs(out)
    if not run_dirs:
        raise EnhanceError(f"no finished run in {out} (no manifest.json or tracks/ there or one level down)")
    problems: list[str] = []
    runs: list[Run] = []
    tracks: list[ReportTrack] = []
    for d in run_dirs:
        r, ts = load_run(out, d, problems, cache)
        runs.append(r)
        tracks.extend(ts)
    if cfg is None:
        cfg = load_config(saved=saved_settings(runs))

    # Gallery selection: best K by quality, near-duplicates (SSIM of the camera pixels) removed.
    new = [t for t in tracks if not t.analysed]
    for t in new:
        cands = [o for o in t.tiles if "enhanced" in o.files or "original" in o.files or "lr" in o.files]
        t.chosen, t.dupes = select(cands, cfg.output.gallery_per_track, lambda o: o.quality,
                                   lambda o: read_image(out, o.files.get("lr") or o.files.get("original")),
                                   cfg.gallery.dedupe)

    model_info, note = _embed(out, new, cfg, models_dir, cache)
    for t in new:
        t.analysed = True
    tracks.sort(key=lambda t: (t.first_time, t.run.rel, t.id))
    cannot = ppl.cooccurring({t.key: ((t.run.rel, t.source), t.frames) for t in tracks})
    small = [t.key for t in tracks if t.embedding is not None and t.embedded_px < ppl.SMALL_FACE_PX]
    clustering = ppl.cluster({t.key: t.embedding for t in tracks}, cfg.people.threshold, cannot, small)
    persons = [(f"P{i + 1}", p) for i, p in enumerate(clustering.people)]
    return Analysis(out, cfg, runs, tracks, persons, clustering, model_info, note, problems)


def saved_settings(runs: list[Run]) -> dict:
    """The settings the first run with a manifest saved ({} if none did)."""
    return next((r.manifest["settings"] for r in runs if isinstance(r.manifest.get("settings"), dict)), {})


def _embed(out: Path, tracks: list[ReportTrack], cfg: Config, models_dir: str | Path | None,
           cache: dict) -> tuple[dict | None, str]:
    """Each track's mean embedding of its best ORIGINAL crops; (model info, note on why not) back."""
    if not cfg.people.enabled:
        return None, "Grouping into people is switched off (people.enabled: false)."
    if "embedder" not in cache:
        if not tracks:
            return None, ""
        try:
            model = find_model(cfg.people.model, models_dir)
            embedder = ppl.Embedder(model, cfg.people.threads, cfg.device_of(cfg.people), cfg.people.runtime)
        except (ModelNotFound, DeviceError) as e:
            cache["embedder"] = None, None, f"Tracks were not grouped into people: {e}"
        else:
            cache["embedder"] = embedder, {"name": model.name, "sha256": sha256(model),
                                           "providers": embedder.choice.names}, ""
    embedder, info, note = cache["embedder"]
    if embedder is None:
        return None, note
    for t in tracks:
        crops, weights, sizes = [], [], []
        best = sorted((o for o in t.tiles if o.files.get("original")), key=lambda o: -o.quality)
        for o in best[:EMBED_PER_TRACK]:
            img = read_image(out, o.files.get("original"))
            if img is None or img.shape[:2] != (CROP, CROP):
                continue
            crops.append(ppl.crop112(img, np.asarray(o.kps) if o.kps else None))
            weights.append(max(o.quality, 1e-3))
            sizes.append(o.size)
        if crops:
            t.embedding = ppl.mean_embedding(embedder(crops), weights)
            t.n_embedded, t.embedded_px = len(crops), float(np.median(sizes))
    return info, ""
