"""`enhance-faces process INPUT … --out DIR`: the pipeline on files, image folders and cameras."""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.text import clean
from .common import add_config_options, add_models_option

if TYPE_CHECKING:  # the command line starts fast: the pipeline is imported when a command runs
    from ..run.progress import ProgressSettings
    from ..run.session import RunResult


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("process", help="process video files, image folders or camera URLs")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="video files, folders of recordings (searched recursively) or of images, list files "
                        "(.txt: one input per line), rtsp:// URLs, /dev/videoN (or a `sources:` list in --config)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--dry-run", action="store_true", help="check inputs, models and config, then stop")
    add_run_options(p)
    add_engine_options(p)
    p.set_defaults(func=run)


def add_run_options(p: argparse.ArgumentParser) -> None:
    add_config_options(p)
    add_models_option(p, "the detector models")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--progress", choices=("auto", "json", "off"), default="auto",
                   help="auto: bars on a terminal, else a line every few seconds; json: one JSON line per "
                        "interval on stderr and a final one (for wrappers and schedulers)")
    p.add_argument("--progress-interval", type=_seconds, default=5.0, metavar="SECONDS",
                   help="seconds between progress lines in logs and JSON (default 5)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in the output folder (otherwise such a folder is refused)")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=positive, metavar="N",
                   help="recordings processed at once on one machine (default: what the machine can hold)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: threads in this process; ray: one Ray task per recording "
                        "(pip install 'enhance-faces[ray]')")
    p.add_argument("--ray-address", metavar="auto|HOST:PORT",
                   help="the Ray cluster to use (implies --engine ray; default: start a local Ray for this run)")


def positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return n


def run(args: argparse.Namespace) -> int:
    from ..core.config import load_config
    from ..run.runner import process

    cfg = load_config(args.config, args.overrides)
    if args.dry_run:
        return dry_run(args, cfg)
    if args.engine == "ray" or args.ray_address:
        from ..distributed import process_on_ray

        return process_on_ray(args.inputs, Path(args.out), cfg, args.models, address=args.ray_address,
                              jobs=args.jobs, progress=progress_mode(args))
    results = process(args.inputs, Path(args.out), cfg, args.models, progress=progress_mode(args),
                      overwrite=args.overwrite, jobs=args.jobs)
    try:
        for r in results:
            summary(r)
    except OSError:  # the terminal went away (SIGHUP): the outputs are written, the code still tells how it ended
        pass
    return exit_code(results)


def progress_mode(args: argparse.Namespace) -> ProgressSettings:
    """--progress and --progress-interval; --quiet wins."""
    from ..run.progress import ProgressSettings

    return ProgressSettings("off" if args.quiet else args.progress, args.progress_interval)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0.1 and 3600, got {text!r}")
    return value


def exit_code(results: list[RunResult]) -> int:
    """0, or 128 + the signal's number for a run stopped by SIGINT (130) or SIGTERM (143)."""
    for r in results:
        if r.status == "interrupted":
            name = r.stats.stopped_by or "SIGINT"
            return 128 + (signal.Signals[name].value if name in signal.Signals.__members__ else signal.SIGINT)
    return 0


def dry_run(args: argparse.Namespace, cfg) -> int:
    from ..run.inputs import expand
    from ..core.models import find_model
    from ..io.sources import open_source

    model = find_model(cfg.detect.model, args.models)
    for spec, name in [(i.spec, i.name) for i in expand(args.inputs)] + [(c.uri, None) for c in cfg.sources]:
        with open_source(spec, cfg.source, name=name or None) as src:
            frames = src.frame_count if src.frame_count is not None else "live"
            print(f"{src.name}: {src.width}x{src.height} @ {src.fps:.2f} fps, {frames} frames")
    print(f"detector: {model}")
    print(f"output: {args.out}")
    print(json.dumps(cfg.to_dict(), indent=1))
    return 0


def summary(r: RunResult) -> None:
    """Wall time, fps, real-time factor, time per stage and which generator weights ran."""
    s = r.stats
    stages = "  ".join(f"{k} {v:.1f}s" for k, v in sorted(r.timings.items(), key=lambda kv: -kv[1]))
    rt = f", {s.realtime_factor:.2f}x real time" if s.realtime_factor else ""
    frames = f"{s.frames} of {s.frames_expected}" if s.short_by() else f"{s.frames}"
    print(f"{r.status}: {frames} frames in {s.wall_s:.1f}s ({s.fps:.1f} fps{rt}), "
          f"{s.faces} faces, {s.tracks} tracks, {s.enhanced} enhanced → {clean(str(r.out))}")
    print(f"  stages: {stages}")
    gen = r.generator
    if gen:
        state = "trained" if gen.get("trained", True) else "UNTRAINED"
        print(f"  generator: {gen.get('name', Path(gen['path']).stem)} ({state}, sha256 {gen['sha256'][:12]}, "
              f"{gen.get('backend', '?')})")
    if s.skipped_frames:
        print(f"  skipped {s.skipped_frames} undecodable frames/packets")
    if s.small_frames:
        print(f"  {s.small_frames} frames smaller than detect.min_face were not searched")
    for note in s.decode_errors[-1:] if r.status == "complete_with_errors" else []:
        print(f"  {clean(note)}")
