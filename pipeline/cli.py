"""Command line: `run.py process|demo|doctor|prepare|train|eval`.

A user's mistake (bad input, config, missing model) is one line on stderr and a non-zero exit;
only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import EnhanceError
from .session import RunResult


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file overlaid on configs/default.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set detect.threshold=0.4 (repeatable)")
    p.add_argument("--models", help="folder with the detector models (else $ENHANCE_MODELS, else ~/.insightface/models)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def cmd_process(args: argparse.Namespace) -> int:
    from .config import load_config
    from .runner import process
    from .sources import open_source

    cfg = load_config(args.config, args.overrides)
    if args.dry_run:
        from .models import find_model

        model = find_model(cfg.detect.model, args.models)
        for spec in args.inputs + [c.uri for c in cfg.sources]:
            with open_source(spec, cfg.source) as src:
                frames = src.frame_count if src.frame_count is not None else "live"
                print(f"{src.name}: {src.width}x{src.height} @ {src.fps:.2f} fps, {frames} frames")
        print(f"detector: {model}")
        print(f"output: {args.out}")
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    results = process(args.inputs, Path(args.out), cfg, args.models, progress=not args.quiet)
    for r in results:
        _summary(r)
    return 130 if any(r.status == "interrupted" for r in results) else 0


def _summary(r: RunResult) -> None:
    s = r.stats
    stages = "  ".join(f"{k} {v:.1f}s" for k, v in sorted(r.timings.items(), key=lambda kv: -kv[1]))
    rt = f", {s.realtime_factor:.2f}x real time" if s.realtime_factor else ""
    print(f"{r.status}: {s.frames} frames in {s.wall_s:.1f}s ({s.fps:.1f} fps{rt}), "
          f"{s.faces} faces, {s.tracks} tracks, {s.enhanced} enhanced → {r.out}")
    print(f"  stages: {stages}")
    gen = r.generator
    if gen:
        state = "trained" if gen.get("trained", True) else "UNTRAINED"
        print(f"  generator: {gen.get('name', Path(gen['path']).stem)} ({state}, sha256 {gen['sha256'][:12]}, {gen.get('backend', '?')})")
    if s.skipped_frames:
        print(f"  skipped {s.skipped_frames} undecodable frames/packets")


def cmd_demo(args: argparse.Namespace) -> int:
    from .config import load_config
    from .demo import make_demo_clip
    from .runner import process

    out = Path(args.out)
    cfg = load_config(args.config, args.overrides)
    clip = make_demo_clip(out / "demo_input.mp4")
    print(f"demo clip: {clip}")
    results = process([str(clip)], out, cfg, args.models, progress=not args.quiet)
    for r in results:
        _summary(r)
    print(f"open {out / 'annotated.mp4'} and {out / 'gallery.png'}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import report

    ok = report(args.models)
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Enhance: find, follow and super-resolve faces in video")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("process", help="process video files, image folders or camera URLs")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="video files, image folders, rtsp:// URLs, /dev/videoN (or a `sources:` list in --config)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--dry-run", action="store_true", help="check inputs, models and config, then stop")
    _add_run_options(p)
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("demo", help="build a short CCTV-like clip from bundled photos and process it")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    _add_run_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("doctor", help="what this machine has: codecs, models, backends")
    p.add_argument("--models", help="folder with the detector models")
    p.set_defaults(func=cmd_doctor)

    from .enhance.cli import add_commands as add_engine_commands
    from .sinks.cli import add_commands as add_gallery

    add_gallery(sub)
    add_engine_commands(sub)
    try:
        from .train.cli import add_commands
    except ImportError:  # training extras missing: the product still runs
        pass
    else:
        add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EnhanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
