"""report.html: the analysis as a static, offline page, rendered from `report.html.j2` by Jinja2.

No script and no external resource (a Content-Security-Policy forbids both); every value is escaped by
the template engine's autoescaping; every link is a relative, percent-encoded path, so no scheme and no
markup can come through a file name. This module only turns the analysis into plain values.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..core.draw import MARK_TEXT
from ..io.records import Observation
from .analyse import Analysis
from .people import SMALL_FACE_PX, Clustering
from .read import ReportTrack, seen_span

CSP = ("default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; media-src 'self' file:; "
       "script-src 'none'; base-uri 'none'; form-action 'none'")
_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def sim(s: float, threshold: float) -> str:
    """A similarity with 2 decimals, or 3 where 2 would make it look equal to the threshold."""
    return f"{s:.3f}" if round(s, 2) == round(threshold, 2) and s != threshold else f"{s:.2f}"


def url(rel: str, fragment: str = "") -> str:
    """A relative link, percent-encoded: never absolute, never climbing out, no scheme, no markup."""
    q = urllib.parse.quote(rel, safe="/")
    if q.startswith("/") or q.startswith("."):
        q = "./" + q.lstrip("/")
    return q + (f"#{urllib.parse.quote(fragment, safe='=.')}" if fragment else "")


def _at(rel: str, t: float) -> str:
    return url(rel, f"t={max(t, 0.0):.2f}")


def render(a: Analysis, gallery: str, people: str) -> str:
    st = a.cfg
    runs = [_run(r.manifest, r.label, r.video) for r in a.runs]
    model = f"{a.model['name']} (sha256 {a.model['sha256'][:16]}…)" if a.model else "not used"
    return _ENV.get_template("report.html.j2").render(
        csp=CSP, mark=MARK_TEXT, title=", ".join(r.label for r in a.runs),
        n_people=len(a.persons), n_tracks=sum(len(p.members) for _, p in a.persons),
        untrained=any((r.manifest.get("generator") or {}).get("trained") is False for r in a.runs),
        warnings=([a.note] if a.note else []) + a.problems, runs=runs,
        model=model, threshold=f"{st.people.threshold:.2f}", per_track=st.output.gallery_per_track,
        dedupe=f"{st.gallery.dedupe:.2f}", generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        gallery=url(gallery), people_json=url(people), people=_people(a),
    )


def _run(m: dict, label: str, video: str | None) -> dict:
    gen = m.get("generator") or {}
    gen_txt = "none (enhancement off)" if not gen else (
        f"{gen.get('name', '?')} · sha256 {gen.get('sha256', '?')}"
        + (" · UNTRAINED (random weights)" if gen.get("trained") is False else ""))
    return {"label": label, "status": m.get("status", "?"), "frames": (m.get("stats") or {}).get("frames", "?"),
            "generator": gen_txt, "finished": m.get("ended", ""), "video": url(video) if video else None}


def _people(a: Analysis) -> list[dict]:
    th, by_key, clustering = a.cfg.people.threshold, a.by_key, a.clustering
    out = []
    for pi, (pid, p) in enumerate(a.persons):
        members = [by_key[k] for k in p.members]
        cams = sorted({t.source for t in members})
        if p.merges:
            why = "; ".join(f"{', '.join(by_key[k].label for k in m.right)} joined "
                            f"{', '.join(by_key[k].label for k in m.left)} at similarity {sim(m.similarity, th)}"
                            + (f" (needed {m.needed:.2f}: faces under {SMALL_FACE_PX:.0f} px)"
                               if m.needed > th else "")
                            for m in p.merges)
            why = f"Grouped because: {why} (threshold {th:.2f})."
        elif members[0].embedding is None:
            why = "Not grouped: no original crop to compare."
        else:
            why = "Not grouped with any other track."
        near = clustering.nearest_person[pi] if pi < len(clustering.nearest_person) else None
        if near is not None:
            qid, q = a.persons[near[0]]
            other = f"{qid} ({', '.join(by_key[k].label for k in q.members)})"
            needed = (f"below the {near[3]:.2f} needed (faces under {SMALL_FACE_PX:.0f} px need more)"
                      if near[3] > th else f"below the threshold {th:.2f}")
            why += (f" Closest other person: {other} at average similarity {sim(near[1], near[3])}, "
                    + ("but they appear in the same frame, so they are different people." if near[2]
                       else f"{needed}."))
        live = [t for t in members if t.record.first_seen]
        seen = seen_span(min(t.record.first_seen for t in live), max(t.record.last_seen or "" for t in live)) \
            if live else ""
        out.append({"id": pid, "n": len(members), "t0": f"{min(t.first_time for t in members):.2f}",
                    "t1": f"{max(t.last_time for t in members):.2f}", "seen": seen, "cameras": cams, "why": why,
                    "tracks": [_track(t, clustering, by_key) for t in members]})
    return out


def _track(t: ReportTrack, clustering: Clustering, by_key: dict) -> dict:
    near = clustering.nearest_outside.get(t.key)
    if t.embedding is None:
        why = "no embedding (no original crop saved)"
    elif near:
        why = f"closest track of another person: {by_key[near[0]].label} at similarity {near[1]:.2f}"
        if frozenset((t.key, near[0])) in clustering.apart:
            why += " (seen in the same frame, so not the same person)"
    else:
        why = ""
    thumb = t.chosen[0] if t.chosen else None
    return {"anchor": t.anchor, "label": t.label, "source": t.source, "t0": f"{t.first_time:.2f}",
            "t1": f"{t.last_time:.2f}", "seen": t.seen, "n_obs": t.record.n_observations,
            "n_enhanced": t.record.n_enhanced, "n_shown": len(t.chosen), "n_hidden": len(t.dupes), "why": why,
            "video": _at(t.run.video, t.first_time) if t.run.video else None,
            "thumb": url(thumb.files.get("lr") or thumb.files.get("original")) if thumb else None,
            "thumb_ai": url(thumb.files["enhanced"]) if thumb and thumb.files.get("enhanced") else None,
            "observations": [_observation(t, o) for o in t.chosen],
            "best": url(t.best_png) if t.best_png else None}


def _observation(t: ReportTrack, o: Observation) -> dict:
    real = o.files.get("lr") or o.files.get("original")
    camera = (f"camera pixels ({o.entry}×{o.entry} px, nearest-neighbour)" if o.files.get("lr")
              else "camera pixels (aligned crop)")
    links = []
    for kind, label in (("original", "original crop"), ("lr", "low-res input"), ("enhanced", "enhanced (marked)"),
                        ("enhanced_unmarked", "enhanced (unmarked)")):
        if o.files.get(kind):
            links.append((url(o.files[kind]), label))
            if kind == "enhanced":
                links.append((url(o.files[kind].rsplit(".", 1)[0] + ".json"), "metadata"))
    if t.run.video:
        links.append((_at(t.run.video, o.time), f"video at {o.time:.2f} s"))
    return {"frame": o.frame, "real": url(real) if real else None, "camera": camera,
            "enhanced": url(o.files["enhanced"]) if o.files.get("enhanced") else None,
            "caption": f"frame {o.frame} · {o.time:.2f} s · face {o.size:.0f} px · quality {o.quality:.2f}",
            "links": links}
