"""`run.py fit-restore`: fit the codec-restoration filter (`pipeline/restore.py`) on the training people."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..models import CONFIGS
from ..train.restore_fit import FitPlan
from .common import add_models_option, data, set_threads, training_clips


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit-restore", help="fit the filter that wins back part of the codec's loss before the generator")
    clips = data("video", "talking_heads")
    p.add_argument("--clips", nargs="*", default=[clips] if clips else None, required=clips is None,
                   help="high-res face clips or folders of them (only those in the split's train list are used; "
                        "default: $ENHANCE_DATA/video/talking_heads)")
    p.add_argument("--split", default=str(CONFIGS / "video_split.yaml"), help="train/eval split by person")
    p.add_argument("--renders", type=int, default=FitPlan.renders, help="camera renderings of each clip")
    p.add_argument("--every", type=int, default=FitPlan.every, help="fit on every N-th frame")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="safetensors file to write")
    add_models_option(p, "det_500m.onnx")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..train.restore_fit import fit_restorer

    set_threads(args.threads)
    if args.renders < 1 or args.every < 1:
        raise InputError("--renders and --every must be at least 1")
    clips = training_clips(args.clips, args.split)
    result = fit_restorer(clips, Path(args.out), args.models, FitPlan(args.renders, args.every, seed=args.seed))
    print(f"{args.out}: fitted on {result['faces']} faces ({result['pixels'] / 1e6:.1f} M pixels) in "
          f"{result['minutes']:.1f} min")
    return 0
