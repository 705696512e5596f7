"""`enhance-faces process INPUT … --out DIR`: the pipeline on files, image folders and cameras."""

from __future__ import annotations

import argparse
import json
import signal
import sys
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
    p.add_argument("--catalog", nargs="?", const="default", metavar="URL",
                   help="write every finished track into the catalogue as the run goes: a SQLite file or "
                        "postgresql://… (alone: $ENHANCE_CATALOG or the user data folder's catalog.sqlite; "
                        "sets catalog.url; docs/catalog.md)")
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
                   help="redo every run already in the output folder (otherwise a finished run of the same "
                        "input and settings is skipped, an unfinished one redone, and one made otherwise refused)")
    p.add_argument("--hash-inputs", action="store_true",
                   help="identify each input by its content's sha256 (read in full) rather than its size and "
                        "modification time, to tell whether an earlier run of it is still valid")


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
    """Either engine; exit codes as docs/jobs.md lists them (0 all done or skipped, 1 some failed, 2 nothing
    could start, 74 output refused, 130/143 stopped). With --progress json an error that ends the command
    is also an "error" line and the final line."""
    from ..run.progress import reporting

    progress = progress_mode(args, "ray" if args.engine == "ray" or args.ray_address else "local")
    with reporting(progress.lines):
        return _run(args, progress)


def _run(args: argparse.Namespace, progress: ProgressSettings) -> int:
    from ..core.config import load_config
    from ..run.runner import process

    cfg = load_config(args.config, args.overrides)
    if getattr(args, "catalog", None):
        cfg.catalog.url = args.catalog
    if args.dry_run:
        return dry_run(args, cfg)
    if args.engine == "ray" or args.ray_address:
        from ..distributed import process_on_ray

        return process_on_ray(args.inputs, Path(args.out), cfg, args.models, address=args.ray_address,
                              jobs=args.jobs, progress=progress, overwrite=args.overwrite,
                              content_hash=args.hash_inputs)
    results = process(args.inputs, Path(args.out), cfg, args.models, progress=progress,
                      overwrite=args.overwrite, jobs=args.jobs, content_hash=args.hash_inputs)
    try:
        for r in results:
            summary(r)
    except OSError:  # the terminal went away (SIGHUP): the outputs are written, the code still tells how it ended
        pass
    return exit_code(results)


def progress_mode(args: argparse.Namespace, engine: str = "local") -> ProgressSettings:
    """--progress and --progress-interval; --quiet wins. JSON mode carries the command's JSON stream."""
    from ..run.progress import JsonLines, ProgressSettings

    mode = "off" if args.quiet else args.progress
    lines = JsonLines(getattr(args, "out", ""), engine) if mode == "json" else None
    return ProgressSettings(mode, args.progress_interval, lines)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0.1 and 3600, got {text!r}")
    return value


def exit_code(results: list[RunResult]) -> int:
    """0 all done or skipped, 1 some failed, 128 + the signal's number for a run stopped by SIGINT (130) or
    SIGTERM (143)."""
    from ..run.batch import exit_code as batch_exit_code
    from ..run.batch import signal_number

    stopped = next((signal_number(r.stats.stopped_by) or signal.SIGINT for r in results if r.status == "interrupted"),
                   None)
    return batch_exit_code([r.status for r in results], stopped)


def dry_run(args: argparse.Namespace, cfg) -> int:
    from ..core.models import find_model
    from ..io.sources import open_source
    from ..run.inputs import expand

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
    """Wall time, fps, real-time factor, time per stage and which generator weights ran; or why a source was
    skipped (already done) or failed."""
    if r.status == "skipped":
        print(f"skipped: {r.source}: already done with the same input and settings → {r.out}")
        return
    if r.status == "failed" and not r.timings:
        print(f"failed: {r.source}: {r.error}", file=sys.stderr)
        return
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
