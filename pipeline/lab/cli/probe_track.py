"""`enhance-faces lab probe-track FOLDER`: how much a track's other frames could add, on an eval-video folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...cli.common import add_models_option, set_threads


def _numbers(text: str, kind, flag: str) -> list:
    from ...core.errors import InputError

    try:
        values = [kind(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise InputError(f"{flag} expects comma-separated numbers, got {text!r}") from None
    if any(v <= 0 for v in values):
        raise InputError(f"{flag}: numbers must be positive, got {text!r}")
    return values


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe-track", help="measure what registered averaging, back-projection, smoothed crops and a "
                                           "temporal filter over a track add, and what blend strengths could win, "
                                           "on an eval-video folder")
    p.add_argument("folder", help="the --out folder of an eval-video run (camera clips, runs, summary.json)")
    p.add_argument("--clips", default=None, help="folder of the high-resolution clips (default: the paths "
                                                 "eval-video recorded)")
    p.add_argument("--face-px", default=None, help="only these face sizes of the folder (comma-separated)")
    p.add_argument("--windows", default="4,8", help="observations averaged per output (comma-separated)")
    p.add_argument("--sigmas", default="2,4", help="Gaussian widths in frames for smoothed crop matrices")
    p.add_argument("--filter", default=None, help="the temporal filter's alpha,tau: how much of the past output "
                                                   "is kept, and up to what difference (default: track_probe.SMOOTHING)")
    p.add_argument("--every", type=int, default=4, help="probe every n-th observation of a clip")
    p.add_argument("--weights", default=None, help="generator safetensors (default: the one in engines/)")
    add_models_option(p, "mobilefacenet_128d.onnx")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...core.errors import InputError
    from ..track_probe import SMOOTHING, probe

    if args.every < 1:
        raise InputError(f"--every must be 1 or more, got {args.every}")
    set_threads(args.threads)
    windows = [w for w in _numbers(args.windows, int, "--windows") if w > 1]
    sigmas = _numbers(args.sigmas, float, "--sigmas")
    sizes = _numbers(args.face_px, int, "--face-px") if args.face_px else None
    smoothing = SMOOTHING if args.filter is None else tuple(_numbers(args.filter, float, "--filter"))
    if len(smoothing) != 2 or smoothing[0] > 1:
        raise InputError(f"--filter expects alpha,tau with alpha at most 1, got {args.filter!r}")
    result = probe(Path(args.folder), Path(args.clips) if args.clips else None, windows, sigmas, args.every,
                   args.weights, args.models, sizes=sizes, smoothing=smoothing)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0
