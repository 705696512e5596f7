"""Search-by-face retrieval quality by face size, on the shared talking heads.

Each clip's first half gives the probes (full-resolution frames, as a photo an analyst would upload); its
second half, shrunk so the face is 16, 20 or 32 px tall in a 640×360 camera frame and encoded as a camera
would (H.264), is run through the pipeline with the catalogue on, so the gallery is exactly what
`process --catalog` stores. Every probe is ranked against every catalogued track of that size; a track of
the probe's own clip is a match. Reported per size: rank-1 (the top track is the probe's person) and mAP
(mean average precision over the whole ranking).

    python benchmarks/catalog/retrieval.py --out /tmp/retrieval [--sizes 16,20,32] [--frames 60] [--probes 4]

Writes OUT/retrieval.json (raw: every probe's ranking) and prints a short table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline.catalog.embed import FaceEmbedder  # noqa: E402
from pipeline.catalog.search import rank  # noqa: E402
from pipeline.core.config import load_config  # noqa: E402
from pipeline.lab.truth import encode, plan_shrink, read_frames, video_rate  # noqa: E402

HEADS = ROOT.parent / "shared" / "data" / "video" / "talking_heads"
MODELS = ROOT.parent / "shared" / "models"
SETTINGS = ["output.video=false", "output.gallery=false"]  # what retrieval does not need


def halves(clip: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames = list(read_frames(clip))
    return frames[: len(frames) // 2], frames[len(frames) // 2 :]


def face_height(frames: list[np.ndarray], embedder: FaceEmbedder) -> float | None:
    """The median face height over frames spread through the half (None: the detector finds no face in it)."""
    det = embedder.detector()
    picks = np.linspace(0, len(frames) - 1, min(24, len(frames))).round().astype(int)
    heights = [faces[0].height for faces in (det(frames[i]) for i in picks) if faces]
    return float(np.median(heights)) if len(heights) >= 3 else None


def gallery_clip(frames: list[np.ndarray], face_h: float, px: int, rate, path: Path, limit: int) -> Path:
    """The second half as a camera sees it: shrunk so the face is `px` tall, in a 640×360 frame, H.264."""
    h, w = frames[0].shape[:2]
    shrink = plan_shrink(w, h, face_h, px)
    encode((shrink.apply(f) for f in frames[:limit]), path, rate, crf=23)
    return path


def probes(frames: list[np.ndarray], n: int, embedder: FaceEmbedder) -> list[np.ndarray]:
    out = []
    for i in np.linspace(0, len(frames) - 1, n).round().astype(int):
        try:
            out.append(embedder.image(frames[i], f"frame {i}"))
        except Exception:  # noqa: BLE001 - a probe frame with no face found is simply not a probe
            continue
    return out


def build_catalog(clips: dict[str, list[np.ndarray]], heights: dict[str, float], rates: dict, px: int,
                  work: Path, limit: int, models: Path = MODELS) -> str:
    """Every clip's gallery at `px`, processed with the catalogue on; returns the catalogue's path."""
    from pipeline.io.sources import open_source
    from pipeline.run.build import Stages
    from pipeline.run.session import run_source

    url = str(work / f"catalog_{px}.sqlite")
    for old in [*work.glob(f"catalog_{px}.sqlite*"), work / f"run_{px}"]:  # a fresh gallery every time
        shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
    cfg = load_config(None, [*SETTINGS, f"catalog.url={url}"])
    stages = Stages(cfg, models, progress=False)
    try:
        for name, frames in clips.items():
            video = gallery_clip(frames, heights[name], px, rates[name], work / f"{name}_{px}.mp4", limit)
            with open_source(str(video), cfg.source, name=name) as src:
                run_source(stages, src, work / f"run_{px}" / name)
    finally:
        stages.close()
    return url


def average_precision(relevant: list[bool]) -> float:
    hits, total = 0, 0.0
    for i, r in enumerate(relevant, 1):
        if r:
            hits += 1
            total += hits / i
    return total / hits if hits else 0.0


def evaluate(url: str, probe_sets: dict[str, list[np.ndarray]]) -> dict:
    from pipeline.catalog.db import engine

    eng = engine(url)
    rows, r1, aps = [], [], []
    for name, embs in probe_sets.items():
        for e in embs:
            hits = rank(eng, e, top=10_000)
            relevant = [h.camera == name for h in hits]
            if not any(relevant):
                continue  # the gallery of this clip holds no track (no face found at this size)
            r1.append(relevant[0])
            aps.append(average_precision(relevant))
            rows.append({"clip": name, "ranking": [[h.camera, h.similarity] for h in hits[:10]],
                         "rank1": relevant[0], "ap": round(aps[-1], 4)})
    eng.dispose()
    return {"rank1": round(float(np.mean(r1)), 4) if r1 else None, "map": round(float(np.mean(aps)), 4) if aps else None,
            "probes": len(r1), "probes_raw": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--sizes", default="16,20,32")
    p.add_argument("--frames", type=int, default=60, help="gallery frames per clip (its second half, from the start)")
    p.add_argument("--probes", type=int, default=4, help="probe frames per clip (spread over its first half)")
    p.add_argument("--clips", default="", help="comma-separated clip names (default: all)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [c for c in args.clips.split(",") if c] or sorted(p.stem for p in HEADS.glob("*.mp4"))
    cfg = load_config(None, SETTINGS)
    embedder = FaceEmbedder(cfg, MODELS)
    firsts, seconds, heights, rates, probe_sets = {}, {}, {}, {}, {}
    skipped: list[str] = []
    for name in names:
        clip = HEADS / f"{name}.mp4"
        firsts[name], seconds[name] = halves(clip)
        seconds[name] = seconds[name][: args.frames]  # what the gallery uses, no more held in memory
        heights[name] = face_height(seconds[name], embedder)
        if heights[name] is None:  # e.g. a face that fills the frame and turns away: nothing to shrink
            skipped.append(name)
            del seconds[name], heights[name]
            continue
        rates[name] = video_rate(clip)
        probe_sets[name] = probes(firsts[name], args.probes, embedder)
        firsts[name] = []
    results = {}
    for px in [int(v) for v in args.sizes.split(",")]:
        t0 = time.perf_counter()
        url = build_catalog(seconds, heights, rates, px, out, args.frames)
        results[px] = {**evaluate(url, probe_sets), "build_s": round(time.perf_counter() - t0, 1)}
    doc = {"command": " ".join(["python", "benchmarks/catalog/retrieval.py", *(argv or sys.argv[1:])]),
           "clips": list(seconds), "skipped_no_face_found": skipped, "gallery_frames": args.frames, "probes_per_clip": args.probes,
           "combine": "cosine to each track's quality-weighted mean embedding of its saved original crops",
           "sizes": results}
    (out / "retrieval.json").write_text(json.dumps(doc, indent=1))
    print(f"{'face px':>8} {'rank-1':>7} {'mAP':>6} {'probes':>7}")
    for px, r in results.items():
        print(f"{px:>8} {r['rank1']!s:>7} {r['map']!s:>6} {r['probes']:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
