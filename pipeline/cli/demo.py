"""`enhance-faces demo`: a short CCTV-like clip built from photos bundled with insightface, then processed."""

from __future__ import annotations

import argparse
from pathlib import Path

from .process import add_run_options, progress_mode, summary


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build a short CCTV-like clip from bundled photos and process it")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.config import load_config
    from ..run.demo import make_demo_clip
    from ..run.runner import process

    out = Path(args.out)
    cfg = load_config(args.config, args.overrides)
    clip = make_demo_clip(out / "demo_input.mp4")
    print(f"demo clip: {clip}")
    for r in process([str(clip)], out, cfg, args.models, progress=progress_mode(args), overwrite=args.overwrite):
        summary(r)
    print(f"open {out / 'annotated.mp4'} and {out / 'gallery.png'}")
    return 0
