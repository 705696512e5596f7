"""Report: people → tracks → observations from a finished run's files, as report.html, gallery.png
and people.json.

Everything is read back from disk (manifest.json, tracks/*/track.json and the tiles), so
`run.py gallery OUT_DIR` regenerates it without reprocessing, with other settings if wanted. An
output folder holding several runs (`process a.mp4 b.mp4 --out X` writes X/a_mp4/, X/b_mp4/) is
reported as one: people are then grouped across cameras.

report.html is static and offline: no script, no external resource (a Content-Security-Policy
forbids both), every piece of text escaped, every link a relative, percent-encoded path.
"""

from __future__ import annotations

import html
import json
import os
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import people as ppl
from ..errors import ConfigError, EnhanceError, ModelNotFound
from ..draw import MARK_TEXT
from .gallery import DEFAULT_DEDUPE, Row, Section, Tile, draw_sheet, select

REPORT = "report.html"
PEOPLE = "people.json"
GALLERY = "gallery.png"


# ------------------------------------------------------------------------------ settings


@dataclass
class ReportSettings:
    people: bool = True  # group tracks into people with face embeddings
    model: str = ppl.MODEL
    threshold: float = ppl.DEFAULT_THRESHOLD  # cosine, 0..1
    per_track: int = 3  # observations shown per track
    dedupe: float = DEFAULT_DEDUPE  # SSIM, 0..1 (1 = keep near-duplicates)

    @classmethod
    def from_config(cls, cfg: dict | None) -> "ReportSettings":
        """From a config dict (Config.to_dict() or a run's manifest settings); missing keys keep defaults."""
        cfg = cfg or {}
        p = cfg.get("people") or {}
        g = cfg.get("gallery") or {}
        o = cfg.get("output") or {}
        s = cls(
            people=p.get("enabled", True),
            model=p.get("model", ppl.MODEL),
            threshold=p.get("threshold", ppl.DEFAULT_THRESHOLD),
            per_track=g.get("per_track", o.get("gallery_per_track", 3)),
            dedupe=g.get("dedupe", DEFAULT_DEDUPE),
        )
        checks = [("people.enabled", s.people, bool, None), ("people.model", s.model, str, None),
                  ("people.threshold", s.threshold, float, (0.0, 1.0)),
                  ("output.gallery_per_track", s.per_track, int, (1, 50)),
                  ("gallery.dedupe", s.dedupe, float, (0.0, 1.0))]
        for key, v, tp, rng in checks:
            ok = isinstance(v, tp) and not (tp is not bool and isinstance(v, bool))
            if tp is float and isinstance(v, int) and not isinstance(v, bool):
                ok = True
            if not ok:
                raise ConfigError(f"{key}: {v!r} has the wrong type")
            if rng and not rng[0] <= v <= rng[1]:
                raise ConfigError(f"{key}: {v!r} is out of range {rng[0]}..{rng[1]}")
        s.threshold, s.dedupe = float(s.threshold), float(s.dedupe)
        return s


# ------------------------------------------------------------------------------ reading a run


@dataclass
class Obs:
    frame: int
    time: float
    box: list[float]
    kps: list[list[float]] | None
    quality: float
    entry: int
    files: dict[str, str]  # kind → path relative to the report's folder (only files that exist)

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1]) if len(self.box) == 4 else 0.0


@dataclass
class Run:
    rel: str  # folder relative to the report ("" = the report's own folder)
    manifest: dict
    video: str | None  # annotated.mp4 relative to the report, if it exists

    @property
    def label(self) -> str:
        inputs = self.manifest.get("inputs") or []
        return str(inputs[0]) if inputs else (self.rel or ".")


@dataclass
class TrackRec:
    run: Run
    id: int
    source: str
    first_time: float
    last_time: float
    n_obs: int
    n_enhanced: int
    frames: set[int]
    tiles: list[Obs]  # observations with saved pixels
    best_png: str | None
    embedding: np.ndarray | None = None
    n_embedded: int = 0
    chosen: list[Obs] = field(default_factory=list)
    dupes: list[Obs] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int]:
        return (self.run.rel, self.id)

    @property
    def anchor(self) -> str:
        return "track-" + "".join(c if c.isalnum() else "_" for c in self.run.rel) + f"-{self.id}"

    @property
    def label(self) -> str:
        return f"#{self.id}" if not self.run.rel else f"{self.run.rel} #{self.id}"


def _safe_name(name: Any) -> str | None:
    """A plain file name from track.json (no folders, no '..'), or None."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    return name


def _num(v: Any, default: float = 0.0) -> float:
    try:
        f = float(v)
        return f if np.isfinite(f) else default
    except (TypeError, ValueError):
        return default


def find_runs(out_dir: Path) -> list[Path]:
    """Folders under out_dir (itself, or its direct subfolders) that hold a run's tracks/ or manifest.json."""
    def is_run(d: Path) -> bool:
        return (d / "tracks").is_dir() or (d / "manifest.json").is_file()

    if is_run(out_dir):
        return [out_dir]
    return sorted(d for d in out_dir.iterdir() if d.is_dir() and is_run(d))


def load_run(out_dir: Path, run_dir: Path, problems: list[str]) -> tuple[Run, list[TrackRec]]:
    rel = run_dir.relative_to(out_dir).as_posix()
    rel = "" if rel == "." else rel
    prefix = f"{rel}/" if rel else ""
    manifest: dict = {}
    mp = run_dir / "manifest.json"
    if mp.is_file():
        try:
            manifest = json.loads(mp.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            problems.append(f"{prefix}manifest.json unreadable: {e}")
    run = Run(rel, manifest if isinstance(manifest, dict) else {},
              f"{prefix}annotated.mp4" if (run_dir / "annotated.mp4").is_file() else None)
    tracks: list[TrackRec] = []
    tdirs = sorted((d for d in (run_dir / "tracks").glob("*") if d.is_dir()),
                   key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name))
    for tdir in tdirs:
        tj = tdir / "track.json"
        try:
            doc = json.loads(tj.read_text(encoding="utf-8"))
            tid = int(doc["track_id"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            problems.append(f"{prefix}tracks/{tdir.name}/track.json unreadable: {e}")
            continue
        base = f"{prefix}tracks/{tdir.name}/"
        tiles: list[Obs] = []
        frames: set[int] = set()
        for o in doc.get("observations") or []:
            if not isinstance(o, dict):
                continue
            frames.add(int(_num(o.get("frame"), -1)))
            files = {}
            listed = o.get("files")
            for kind, name in (listed.items() if isinstance(listed, dict) else ()):
                name = _safe_name(name)
                if name and (tdir / name).is_file():
                    files[str(kind)] = base + name
            if not files:
                continue
            box = [_num(v) for v in (o.get("box") or [])][:4]
            kps = o.get("kps")
            try:
                kps = np.asarray(kps, np.float64).reshape(5, 2).tolist() if kps is not None else None
            except (ValueError, TypeError):
                kps = None
            tiles.append(Obs(int(_num(o.get("frame"), -1)), _num(o.get("time")), box, kps, _num(o.get("quality")),
                             int(_num(o.get("entry"))), files))
        best = base + "best.png" if (tdir / "best.png").is_file() else None
        tracks.append(TrackRec(run, tid, str(doc.get("source", "")), _num(doc.get("first_time")),
                               _num(doc.get("last_time")), int(_num(doc.get("n_observations"))),
                               int(_num(doc.get("n_enhanced"))), frames, tiles, best))
    return run, tracks


def _read(out_dir: Path, rel: str | None) -> np.ndarray | None:
    if not rel:
        return None
    return cv2.imread(str(out_dir / rel), cv2.IMREAD_COLOR)


# ------------------------------------------------------------------------------ the report


@dataclass
class Analysis:
    """Everything the report shows, computed from a finished run's files."""

    out: Path
    settings: ReportSettings
    runs: list[Run]
    tracks: list[TrackRec]  # in order of first appearance
    persons: list[tuple[str, ppl.Person]]  # ("P1", Person) …
    clustering: ppl.Clustering
    model: dict | None  # embedding model {name, sha256}, None when not used
    note: str  # why people were not grouped, if they were not
    problems: list[str]  # unreadable files, shown in the report

    @property
    def by_key(self) -> dict[tuple[str, int], TrackRec]:
        return {t.key: t for t in self.tracks}


def write_report(out_dir: str | Path, cfg: dict | None = None, models_dir: str | Path | None = None) -> Path:
    """Read a finished run (or a folder of runs), group tracks into people, write gallery.png,
    people.json and report.html into out_dir; returns the report's path.

    `cfg`: a config dict (Config.to_dict()); None uses the settings saved in the run's manifest.
    Raises EnhanceError when out_dir holds no run, ConfigError for a bad people/gallery setting.
    """
    a = analyse(out_dir, cfg, models_dir)
    _write_people_json(a)
    _write_sheet(a)
    path = a.out / REPORT
    doc = _html(a)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, path)
    return path


def analyse(out_dir: str | Path, cfg: dict | None = None, models_dir: str | Path | None = None) -> Analysis:
    """Load the run(s) in out_dir, pick each track's observations, embed and group tracks into people."""
    from ..models import find_model, sha256

    out = Path(out_dir)
    if not out.is_dir():
        raise EnhanceError(f"output folder not found: {out}")
    run_dirs = find_runs(out)
    if not run_dirs:
        raise EnhanceError(f"no finished run in {out} (no manifest.json or tracks/ there or one level down)")
    problems: list[str] = []
    runs: list[Run] = []
    tracks: list[TrackRec] = []
    for d in run_dirs:
        r, ts = load_run(out, d, problems)
        runs.append(r)
        tracks.extend(ts)
    if cfg is None:
        cfg = next((r.manifest.get("settings") for r in runs if isinstance(r.manifest.get("settings"), dict)), {})
    st = ReportSettings.from_config(cfg)

    # Gallery selection: best K by quality, near-duplicates (SSIM of the camera pixels) removed.
    for t in tracks:
        cands = [o for o in t.tiles if "enhanced" in o.files or "original" in o.files or "lr" in o.files]
        t.chosen, t.dupes = select(cands, st.per_track, lambda o: o.quality,
                                   lambda o: _read(out, o.files.get("lr") or o.files.get("original")), st.dedupe)

    # People: embeddings of the original crops only.
    model_info: dict | None = None
    people_note = ""
    if st.people and tracks:
        try:
            model = find_model(st.model, models_dir)
        except ModelNotFound as e:
            people_note = f"Tracks were not grouped into people: {e}"
        else:
            model_info = {"name": model.name, "sha256": sha256(model)}
            embedder = ppl.Embedder(model)
            for t in tracks:
                crops, weights = [], []
                for o in t.tiles:
                    img = _read(out, o.files.get("original"))
                    if img is None or img.shape[:2] != (128, 128):
                        continue
                    crops.append(ppl.crop112(img, np.asarray(o.kps) if o.kps else None))
                    weights.append(max(o.quality, 1e-3))
                if crops:
                    t.embedding = ppl.mean_embedding(embedder(crops), weights)
                    t.n_embedded = len(crops)
    elif not st.people:
        people_note = "Grouping into people is switched off (people.enabled: false)."

    tracks.sort(key=lambda t: (t.first_time, t.run.rel, t.id))
    cannot = ppl.cooccurring({t.key: ((t.run.rel, t.source), t.frames) for t in tracks})
    clustering = ppl.cluster({t.key: t.embedding for t in tracks}, st.threshold, cannot)
    persons = [(f"P{i + 1}", p) for i, p in enumerate(clustering.people)]
    return Analysis(out, st, runs, tracks, persons, clustering, model_info, people_note, problems)


def _key_json(k: tuple[str, int]) -> dict:
    return {"run": k[0], "track": k[1]}


def _write_people_json(a: Analysis) -> None:
    persons, clustering, by_key, st = a.persons, a.clustering, a.by_key, a.settings
    doc = {
        "note": "Similarities are cosine similarities of face embeddings computed on the camera's original crops "
                "(never on enhanced faces). At CCTV face sizes they are hints for an analyst, not identification.",
        "threshold": st.threshold,
        "model": a.model,
        "status": a.note or "grouped",
        "people": [{
            "id": pid,
            "tracks": [{**_key_json(k), "source": by_key[k].source, "first_time": by_key[k].first_time,
                        "last_time": by_key[k].last_time, "embedded_crops": by_key[k].n_embedded,
                        "shown_frames": [o.frame for o in by_key[k].chosen],
                        "hidden_near_duplicates": [o.frame for o in by_key[k].dupes],
                        "nearest_other": ({**_key_json(clustering.nearest_outside[k][0]),
                                           "similarity": clustering.nearest_outside[k][1]}
                                          if clustering.nearest_outside.get(k) else None)}
                       for k in p.members],
            "merges": [{"left": [_key_json(k) for k in m.left], "right": [_key_json(k) for k in m.right],
                        "similarity": m.similarity} for m in p.merges],
        } for pid, p in persons],
    }
    p = a.out / PEOPLE
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, p)


def _write_sheet(a: Analysis) -> None:
    out, persons, by_key, st = a.out, a.persons, a.by_key, a.settings
    sections = []
    for pid, p in persons:
        members = [by_key[k] for k in p.members]
        title = f"{pid}: " + ", ".join(t.label for t in members)
        if p.merges:
            title += "  (joined at similarity " + ", ".join(f"{m.similarity:.2f}" for m in p.merges) + ")"
        rows = []
        for t in members:
            lines = [t.label, f"t={t.first_time:.1f}-{t.last_time:.1f}s", f"{t.n_obs} obs, {t.n_enhanced} enhanced"]
            if t.dupes:
                lines.append(f"{len(t.dupes)} near-duplicate(s) hidden")
            tiles = [Tile(_read(out, o.files.get("lr") or o.files.get("original")),
                          _read(out, o.files.get("enhanced_unmarked") or o.files.get("enhanced")),
                          o.frame, o.time, o.entry) for o in t.chosen]
            rows.append(Row(lines, [x for x in tiles if x.original is not None or x.enhanced is not None]))
        sections.append(Section(title, rows))
    draw_sheet(out / GALLERY, sections, st.per_track, {"Threshold": f"{st.threshold:.2f}"},
               note="left: camera pixels at their real resolution (nearest-neighbour); right: AI-enhanced. "
                    "Rows grouped by person (face-embedding similarity of the originals).")


# ------------------------------------------------------------------------------ HTML

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f4f4;color:#111}
header{background:#7a1010;color:#fff;padding:12px 20px}
header h1{margin:0 0 4px;font-size:20px}
main{padding:12px 20px}
table.run{border-collapse:collapse;margin:8px 0 16px;background:#fff}
table.run td.sha{word-break:break-all;max-width:420px}
table.run td,table.run th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
section.person{background:#fff;border:1px solid #bbb;border-radius:6px;margin:14px 0;padding:8px 12px}
section.person h2{margin:4px 0;font-size:17px}
.why{color:#333;font-size:13px;margin:2px 0 8px}
details.track{border-top:1px solid #ddd;padding:6px 0}
details.track>summary{cursor:pointer;display:flex;gap:10px;align-items:center}
details.track>summary img{width:64px;height:64px}
.obs-list{display:flex;flex-wrap:wrap;gap:14px;margin:8px 0 4px 20px}
figure.obs{margin:0;background:#fafafa;border:1px solid #ddd;padding:6px}
figure.obs img{width:128px;height:128px;display:block}
.pair{display:flex;gap:4px}
.px{image-rendering:pixelated;image-rendering:crisp-edges}
.ai{outline:3px solid #c00}
.tag{font-size:11px;font-weight:bold}
.tag.ai-t{color:#c00}
figcaption{font-size:12px;margin-top:4px;max-width:264px}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;margin:8px 0}
.small{font-size:12px;color:#555}
"""


def sim(s: float, threshold: float) -> str:
    """A similarity with 2 decimals, or 3 where 2 would make it look equal to the threshold."""
    return f"{s:.3f}" if round(s, 2) == round(threshold, 2) and s != threshold else f"{s:.2f}"


def esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def url(rel: str, fragment: str = "") -> str:
    """A relative link, percent-encoded (so no scheme, no markup can come through), then HTML-escaped."""
    q = urllib.parse.quote(rel, safe="/")
    if q.startswith("/") or q.startswith("."):  # never absolute or climbing out
        q = "./" + q.lstrip("/")
    return esc(q + (f"#{urllib.parse.quote(fragment, safe='=.')}" if fragment else ""))


def _img(rel: str | None, alt: str, cls: str = "") -> str:
    if not rel:
        return ""
    c = f' class="{esc(cls)}"' if cls else ""
    return f'<img src="{url(rel)}" alt="{esc(alt)}"{c}>'


def _obs_html(t: TrackRec, o: Obs) -> str:
    real = o.files.get("lr") or o.files.get("original")
    px = o.entry or 0
    cam = f"camera pixels ({px}×{px} px, nearest-neighbour)" if o.files.get("lr") else "camera pixels (aligned crop)"
    parts = [f'<figure class="obs" data-frame="{o.frame}"><div class="pair">']
    parts.append(f'<div><div class="tag">camera</div>{_img(real, cam, "px")}</div>')
    if o.files.get("enhanced"):
        parts.append(f'<div><div class="tag ai-t">{esc(MARK_TEXT)}</div>'
                     f'{_img(o.files["enhanced"], MARK_TEXT, "ai")}</div>')
    parts.append("</div><figcaption>")
    parts.append(f"frame {o.frame} · {o.time:.2f} s · face {o.size:.0f} px · quality {o.quality:.2f}<br>")
    links = []
    for kind, label in (("original", "original crop"), ("lr", "low-res input"), ("enhanced", "enhanced (marked)"),
                        ("enhanced_unmarked", "enhanced (unmarked)")):
        if o.files.get(kind):
            links.append(f'<a href="{url(o.files[kind])}">{esc(label)}</a>')
            side = o.files[kind].rsplit(".", 1)[0] + ".json"
            if kind == "enhanced":
                links.append(f'<a href="{url(side)}">metadata</a>')
    if t.run.video:
        links.append(f'<a href="{url(t.run.video, f"t={max(o.time, 0.0):.2f}")}">video at {o.time:.2f} s</a>')
    parts.append(" · ".join(links))
    parts.append("</figcaption></figure>")
    return "".join(parts)


def _track_html(t: TrackRec, clustering, by_key) -> str:
    thumb = t.chosen[0] if t.chosen else None
    near = clustering.nearest_outside.get(t.key)
    if t.embedding is None:
        why = "no embedding (no original crop saved)"
    elif near:
        why = f"closest track of another person: {esc(by_key[near[0]].label)} at similarity {near[1]:.2f}"
        if frozenset((t.key, near[0])) in clustering.apart:
            why += " (seen in the same frame, so not the same person)"
    else:
        why = ""
    head = [f'<details class="track" id="{esc(t.anchor)}"><summary>']
    if thumb:
        head.append(_img(thumb.files.get("lr") or thumb.files.get("original"), "camera pixels", "px"))
        if thumb.files.get("enhanced"):
            head.append(_img(thumb.files["enhanced"], MARK_TEXT, "ai"))
    video = (f' · <a href="{url(t.run.video, f"t={max(t.first_time, 0.0):.2f}")}">video</a>' if t.run.video else "")
    head.append(
        f"<span><b>Track {esc(t.label)}</b> · camera {esc(t.source)} · {t.first_time:.2f}–{t.last_time:.2f} s · "
        f"{t.n_obs} observations, {t.n_enhanced} enhanced, {len(t.chosen)} shown"
        + (f", {len(t.dupes)} near-duplicate(s) hidden" if t.dupes else "")
        + f"{video}<br><span class='small'>{why}</span></span></summary>"
    )
    body = ['<div class="obs-list">']
    body += [_obs_html(t, o) for o in t.chosen] or ["<p class='small'>No tiles saved for this track.</p>"]
    body.append("</div>")
    if t.best_png:
        body.append(f'<p class="small"><a href="{url(t.best_png)}">best.png</a></p>')
    body.append("</details>")
    return "".join(head) + "".join(body)


def _html(a: Analysis) -> str:
    runs, persons, clustering, by_key, st = a.runs, a.persons, a.clustering, a.by_key, a.settings
    model_info, note, problems = a.model, a.note, a.problems
    n_tracks = sum(len(p.members) for _, p in persons)
    rows = []
    for r in runs:
        m = r.manifest
        gen = m.get("generator") or {}
        gen_txt = "none (enhancement off)" if not gen else (
            f"{gen.get('name', '?')} · sha256 {gen.get('sha256', '?')}"
            + (" · UNTRAINED (random weights)" if gen.get("trained") is False else ""))
        stats = m.get("stats") or {}
        video = f'<a href="{url(r.video)}">annotated video</a>' if r.video else "—"
        rows.append(
            f"<tr><td>{esc(r.label)}</td><td>{esc(m.get('status', '?'))}</td><td>{esc(stats.get('frames', '?'))}</td>"
            f"<td class='sha'>{esc(gen_txt)}</td><td>{esc(m.get('ended', ''))}</td>"
            f"<td>{video}</td></tr>"
        )
    people_html = []
    for pi, (pid, p) in enumerate(persons):
        members = [by_key[k] for k in p.members]
        cams = sorted({t.source for t in members})
        t0, t1 = min(t.first_time for t in members), max(t.last_time for t in members)
        if p.merges:
            why = "; ".join(
                f"{esc(', '.join(by_key[k].label for k in m.right))} joined {esc(', '.join(by_key[k].label for k in m.left))} "
                f"at similarity {sim(m.similarity, st.threshold)}" for m in p.merges)
            why = f"Grouped because: {why} (threshold {st.threshold:.2f})."
        elif members[0].embedding is None:
            why = "Not grouped: no original crop to compare."
        else:
            why = "Not grouped with any other track."
        near = clustering.nearest_person[pi] if pi < len(clustering.nearest_person) else None
        if near is not None:
            qid, q = persons[near[0]]
            qlabel = f"{qid} ({', '.join(by_key[k].label for k in q.members)})"
            if near[2]:
                why += (f" Closest other person: {esc(qlabel)} at average similarity {sim(near[1], st.threshold)}, "
                        "but they appear in the same frame, so they are different people.")
            else:
                why += (f" Closest other person: {esc(qlabel)} at average similarity {sim(near[1], st.threshold)}, "
                        f"below the threshold {st.threshold:.2f}.")
        people_html.append(
            f'<section class="person" id="person-{esc(pid)}"><h2>Person {esc(pid)} — {len(members)} track'
            f'{"s" if len(members) != 1 else ""}, {t0:.2f}–{t1:.2f} s, camera{"s" if len(cams) != 1 else ""} '
            f'{esc(", ".join(cams))}</h2><p class="why">{why}</p>'
            + "".join(_track_html(t, clustering, by_key) for t in members) + "</section>"
        )
    warn = "".join(f'<p class="warn">{esc(x)}</p>' for x in ([note] if note else []) + problems)
    gen_untrained = any((r.manifest.get("generator") or {}).get("trained") is False for r in runs)
    csp = ("default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; media-src 'self' file:; "
           "script-src 'none'; base-uri 'none'; form-action 'none'")
    untrained_html = ('<p class="warn">The generator that ran is UNTRAINED (random weights): its output is '
                      "not a trained reconstruction and is shown only to test the pipeline.</p>") if gen_untrained else ""
    body_html = "".join(people_html) if people_html else "<p>No faces were tracked.</p>"
    title = esc(", ".join(r.label for r in runs))
    generated = esc(datetime.now(timezone.utc).isoformat(timespec="seconds"))
    model_txt = (f"{model_info['name']} (sha256 {model_info['sha256'][:16]}…)" if model_info else "not used")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">
<meta name="referrer" content="no-referrer">
<title>Enhance report — {title}</title>
<style>{CSS}</style></head>
<body>
<header><h1>Faces found: {len(persons)} people, {n_tracks} tracks</h1>
<div>Pictures outlined in red and marked “{esc(MARK_TEXT)}” are AI reconstructions: a generative model
invented plausible detail the camera never recorded. They are not photographs and not evidence of identity.
The camera's own pixels are always shown beside them, at their real resolution.</div></header>
<main>
{untrained_html}
{warn}
<table class="run"><tr><th>source</th><th>status</th><th>frames</th><th>generator</th><th>finished</th><th>video</th></tr>
{"".join(rows)}</table>
<p class="small">People are groups of tracks whose face embeddings ({esc(model_txt)}, computed on the camera's
original crops, never on enhanced faces) are at least {st.threshold:.2f} similar on average, and which never
appear in the same frame. At CCTV face sizes (10–30 px) this is a hint for an analyst, not identification:
the same person is often <em>not</em> grouped, and every grouping states its similarity. Per track, the best
{st.per_track} observations by quality are shown, with near-duplicates (SSIM ≥ {st.dedupe:.2f}) hidden.
Click a track to see its observations. Generated {generated}.
Also: <a href="{url(GALLERY)}">gallery.png</a> · <a href="{url(PEOPLE)}">people.json</a></p>
{body_html}
</main></body></html>
"""
