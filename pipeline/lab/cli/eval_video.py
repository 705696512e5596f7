"""`enhance-faces lab eval-video CLIP …`: how faithful the enhanced faces are on real video, against the truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...cli.common import add_models_option, require_extra, set_threads


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-video", help="score the generator against the truth on real high-res face video")
    p.add_argument("clips", nargs="+", metavar="CLIP", help="high-resolution face clips (files or folders of .mp4)")
    p.add_argument("--face-px", default="16,20,24,32,40", help="face heights to shrink to (comma-separated)")
    p.add_argument("--crf", type=int, default=26, help="CRF of the camera-like encode")
    p.add_argument("--codec", choices=("libx264", "libx265"), default="libx264",
                   help="the camera's codec: H.264 (libx264) or H.265 (libx265)")
    p.add_argument("--groups", default=None, metavar="SPLIT.yaml",
                   help="a split file with `groups: {person: [child, older, darker, …]}`: means per group too")
    p.add_argument("--weights", default=None, help="generator safetensors (default: the one in engines/)")
    p.add_argument("--fused", default=None, metavar="WEIGHTS",
                   help="also run a track-fusion generator on every clip and score it as `fused`")
    p.add_argument("--fusion", type=int, default=8, help="observations fused per output with --fused")
    add_models_option(p, "the detector and mobilefacenet_128d.onnx")
    p.add_argument("--out", default="runs/eval_video", help="working folder: camera clips, runs, sample sheets")
    p.add_argument("--json", default=None, help="also write the summary here")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="pipeline setting for the runs, e.g. --set align.max_downscale=2")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...core.errors import InputError
    from ..eval_video import evaluate_clips, format_summary

    require_extra("pytorch_msssim", "train")

    set_threads(args.threads)
    try:
        sizes = [int(s) for s in str(args.face_px).split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--face-px expects sizes like 16,20,32, got {args.face_px!r}") from None
    if not sizes or min(sizes) < 8:
        raise InputError(f"--face-px: sizes must be 8 px or more, got {args.face_px!r}")
    clips: list[Path] = []
    for c in args.clips:
        p = Path(c)
        clips.extend(sorted(p.glob("*.mp4")) if p.is_dir() else [p])
    if not clips:
        raise InputError("no clips given")
    out = Path(args.out)
    groups = None
    if args.groups:
        from ...core.config import read_yaml

        groups = {str(k): list(v or []) for k, v in (read_yaml(args.groups).get("groups") or {}).items()}
    summary = evaluate_clips(clips, sizes, out, args.crf, args.weights, args.models, args.overrides, args.fused,
                             args.fusion, codec=args.codec, groups=groups)
    print(format_summary(summary))
    print(f"summary: {out / 'summary.json'}; sample sheets: {out}/<clip>/face<px>/samples.png")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0
