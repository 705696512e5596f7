"""`enhance-faces gallery OUT_DIR`: regenerate gallery.png, people.json and report.html from a finished run.

Nothing is reprocessed: the run's own files (manifest.json, tracks/*/track.json, the tiles) are read
back. Settings: the ones saved in the run's manifest, then --config FILE, then --set key=value, through
the same loader as `process`. A run that crashed (its manifest says "running", no process holds its
folder) is recovered first (`pipeline.run.recover`) and then gets its gallery, people and report; a folder
a run is still writing to is refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..core.config import Config
from ..core.errors import EnhanceError
from .common import add_config_options, add_models_option


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gallery", help="rebuild gallery.png, people.json and report.html from a finished run")
    p.add_argument("out_dir", metavar="OUT_DIR", help="a finished run's output folder (or a folder of runs)")
    add_config_options(p, "YAML file overlaid on the run's saved settings", "people.threshold=0.7")
    add_models_option(p, "mobilefacenet_128d.onnx")
    p.add_argument("--quiet", action="store_true", help="no summary output")
    p.set_defaults(func=run)


def saved_config(out_dir: Path, config: str | None, overrides: list[str]) -> Config:
    """The run's saved settings, then a YAML file, then --set overrides."""
    from ..core.config import load_config

    saved: dict[str, Any] = {}
    for m in [out_dir / "manifest.json", *sorted(out_dir.glob("*/manifest.json"))]:
        try:
            settings = json.loads(m.read_text(encoding="utf-8")).get("settings")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(settings, dict):
            saved = settings
            break
    return load_config(config, overrides, saved=saved)


def run(args: argparse.Namespace) -> int:
    from ..report import GALLERY, PEOPLE, write_report
    from ..run.outdir import FolderLock
    from ..run.recover import recover, relist

    out = Path(args.out_dir)
    if not out.is_dir():
        raise EnhanceError(f"output folder not found: {out}")
    with FolderLock(out, hint=""):  # a running run holds it: refused with one line
        crashed = recover(out)
        path = write_report(out, saved_config(out, args.config, args.overrides), args.models)
        for d in crashed:
            relist(d)
    people = json.loads((out / PEOPLE).read_text(encoding="utf-8"))
    n_people = len(people["people"])
    n_tracks = sum(len(p["tracks"]) for p in people["people"])
    if not args.quiet:
        print(f"{n_tracks} tracks, {n_people} people (threshold {people['threshold']:.2f}) → {path}")
        print(f"  also {out / GALLERY} and {out / PEOPLE}")
        if people.get("status") not in (None, "grouped"):
            print(f"  note: {people['status']}")
        for d in crashed:
            print(f"  recovered a crashed run in {d}: status \"crashed\", files re-listed")
    return 0
