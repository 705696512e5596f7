"""`enhance-faces catalog add|stats|prune|forget`: fill the catalogue from run folders, say what it holds,
and remove what retention or erasure requires (docs/catalog.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_config_options, add_models_option, require_extra


def add_catalog_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", metavar="URL",
                   help="a SQLite file or postgresql://… (${VAR} from the environment; default: $ENHANCE_CATALOG, "
                        "else catalog.sqlite in the user data folder)")


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="the catalogue of every track: add run folders, stats, prune, forget")
    cmds = p.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    a = cmds.add_parser("add", help="import finished (or crashed) run folders; adding one twice adds nothing")
    a.add_argument("folders", nargs="+", metavar="DIR", help="run output folders (or folders of runs)")
    add_catalog_option(a)
    add_config_options(a, "YAML file whose people.* settings embed the faces", "people.threads=2")
    add_models_option(a, "mobilefacenet_128d.onnx")
    a.add_argument("--no-embed", action="store_true", help="store tracks without face embeddings (no search)")
    a.set_defaults(func=run_add)
    st = cmds.add_parser("stats", help="what the catalogue holds")
    add_catalog_option(st)
    st.add_argument("--json", action="store_true", help="JSON instead of a table")
    st.set_defaults(func=run_stats)
    pr = cmds.add_parser("prune", help="remove runs whose tracks all ended longer ago than --older-than")
    add_catalog_option(pr)
    pr.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 2w")
    pr.set_defaults(func=run_prune)
    fg = cmds.add_parser("forget", help="remove one track (erasure) and, with --delete-files, its tiles")
    add_catalog_option(fg)
    fg.add_argument("--track", type=int, required=True, metavar="ID", help="the catalogue's track id")
    fg.add_argument("--delete-files", action="store_true", help="also delete the track's folder of tiles")
    fg.set_defaults(func=run_forget)


def open_engine(args: argparse.Namespace):
    require_extra("sqlalchemy", "catalog")
    from ..catalog.db import engine

    return engine(args.catalog)


def run_add(args: argparse.Namespace) -> int:
    from ..catalog.embed import FaceEmbedder
    from ..catalog.folders import Added, add_folder
    from ..catalog.ingest import Writer
    from ..core.config import load_config

    eng = open_engine(args)
    cfg = load_config(args.config, args.overrides)
    writer = Writer(eng, None if args.no_embed else FaceEmbedder(cfg, args.models))
    added = Added()
    for folder in args.folders:
        add_folder(writer, Path(folder), added)
    for p in added.problems:
        print(f"  note: {p}")
    print(f"{added.runs} runs: {added.tracks} tracks added, {added.known} already there, {added.open} left open "
          "by a run that died")
    return 0 if added.runs else 2


def _iso(t: float | None) -> str:
    from datetime import datetime, timezone

    return "" if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def run_stats(args: argparse.Namespace) -> int:
    from ..catalog.db import shown
    from ..catalog.query import stats

    doc = stats(open_engine(args))
    if args.json:
        print(json.dumps({"catalog": shown(args.catalog), **doc}, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    c = doc["counts"]
    print(f"catalog {shown(args.catalog)}")
    print(f"  {c['cameras']} cameras, {c['recordings']} recordings, {c['runs']} runs, {c['tracks']} tracks "
          f"({c['open_tracks']} left open), {c['observations']} observations, {c['tiles']} tiles, "
          f"{c['embeddings']} face embeddings, {c['searches']} searches logged")
    if doc["first_at"] is not None:
        print(f"  from {_iso(doc['first_at'])} to {_iso(doc['last_at'])}")
    t = Table("camera", "tracks", "first", "last")
    for cam in doc["cameras"]:
        t.add_row(cam["name"], str(cam["tracks"]), _iso(cam["first_at"]), _iso(cam["last_at"]))
    Console(highlight=False).print(t)
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from ..catalog.query import age_seconds, prune

    age = age_seconds(args.older_than)
    done = prune(open_engine(args), age)
    print(f"removed {done['runs']} runs ({done['tracks']} tracks), {done['recordings']} recordings and "
          f"{done['cameras']} cameras seen before {_iso(done['cutoff'])}; run folders on disk are untouched")
    return 0


def run_forget(args: argparse.Namespace) -> int:
    from ..catalog.query import forget, track_folder
    from ..core.errors import EnhanceError

    eng = open_engine(args)
    folder = track_folder(eng, args.track)
    if not forget(eng, args.track, args.delete_files):
        raise EnhanceError(f"no track {args.track} in the catalog")
    print(f"forgot track {args.track}" + (f" and deleted {folder}" if args.delete_files else
                                           f" (its tiles stay in {folder}; --delete-files removes them)"))
    return 0
