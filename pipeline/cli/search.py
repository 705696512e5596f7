"""`enhance-faces search --face PHOTO | --track ID`: the catalogued tracks most like a face, best first.

The probe photo's largest face is found by the detector and embedded by the recogniser the people grouping
uses; a track's own embedding serves for "more like this". Filters (camera, time) run in SQL, ranking in
numpy (pipeline.catalog.search) over the track embeddings, which are kept between calls in the user's cache
folder and brought up to date from the catalogue each time (`db.vector_cache`). A table on the terminal, or
JSON (--json) for tools. Every search is written to the catalogue's audit log.
"""

from __future__ import annotations

import argparse
import getpass
import json

from .catalog import _iso, add_catalog_option, open_engine
from .common import add_config_options, add_models_option
from .process import positive


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="find the catalogued tracks most like a face photo or a track")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--face", metavar="PHOTO", help="a photo of the face to look for (its largest face is used)")
    what.add_argument("--track", type=int, metavar="ID", help="more like this catalogued track")
    p.add_argument("--camera", help="only this camera (its source name)")
    p.add_argument("--since", metavar="TIME", help="tracks seen at or after TIME (ISO 8601, UTC unless given)")
    p.add_argument("--until", metavar="TIME", help="tracks seen at or before TIME")
    p.add_argument("--top", type=positive, default=10, metavar="N", help="how many tracks (default 10)")
    p.add_argument("--json", action="store_true", help="JSON for tools instead of a table")
    add_catalog_option(p)
    add_config_options(p, "YAML file for the detector and recogniser settings", "people.threads=2")
    add_models_option(p, "det_500m.onnx and mobilefacenet_128d.onnx")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..catalog.query import Filters, when
    from ..catalog.search import audit, rank_cached, track_embedding

    eng = open_engine(args)
    filters = Filters(args.camera, when(args.since), when(args.until))
    if args.face:
        from ..catalog.embed import FaceEmbedder
        from ..core.config import load_config

        probe = FaceEmbedder(load_config(args.config, args.overrides), args.models).photo(args.face)
    else:
        probe = track_embedding(eng, args.track)
    hits = rank_cached(eng, probe, filters, args.top, exclude=args.track)
    audit(eng, f"cli:{getpass.getuser()}", "face" if args.face else "track",
          {"camera": args.camera, "since": args.since, "until": args.until, "top": args.top,
           **({"track": args.track} if args.track else {}), "results": len(hits)})
    if args.json:
        print(json.dumps({"query": {"face": args.face, "track": args.track, "camera": args.camera,
                                    "since": filters.since, "until": filters.until, "top": args.top},
                          "combine": "cosine to each track's quality-weighted mean embedding",
                          "results": [h.as_dict() for h in hits]}, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table("#", "similarity", "track", "camera", "first seen", "last seen", "obs", "face px", "person", "best tile",
              title="similarity is a hint for an analyst, not identification (small faces say little)")
    for i, h in enumerate(hits, 1):
        t.add_row(str(i), f"{h.similarity:.3f}", str(h.track), h.camera, _iso(h.first_at), _iso(h.last_at),
                  str(h.n_observations), "" if h.face_px is None else f"{h.face_px:.0f}", h.person or "",
                  f"{h.folder}/{h.best_tile}" if h.best_tile else "")
    Console(highlight=False, markup=False).print(t) if hits else print("no track with a face embedding matches")
    return 0
