"""`enhance-faces lab prepare-video`: training sequences made the way the pipeline sees faces in video."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ...cli.common import DATA, add_models_option, data, set_threads
from ...core.config import AlignConfig
from ...core.models import CONFIGS
from ..pack import CLIPS


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare-video", help="make training sequences the way the pipeline sees faces in video")
    shared = data("video", "talking_heads")
    p.add_argument("--clips", nargs="*", default=[*([shared] if shared else []), str(CLIPS)],
                   help="high-res face clips or folders of them (only those in the split's train list are used; "
                        "default: $ENHANCE_DATA/video/talking_heads and the training pack, pipeline/lab/pack/clips)")
    p.add_argument("--split", default=str(CONFIGS / "video_split.yaml"), help="train/eval split by person")
    p.add_argument("--stills", default=data("faces", "train") or "",
                   help="face photos turned into short clips ('' for none; default: $ENHANCE_DATA/faces/train)")
    p.add_argument("--stills-limit", type=int, default=0)
    p.add_argument("--renders", type=int, default=8, help="camera renderings of each clip")
    p.add_argument("--still-frames", type=int, default=6)
    p.add_argument("--min-px", type=float, default=14.0)
    p.add_argument("--max-px", type=float, default=44.0)
    p.add_argument("--crf-min", type=int, default=20)
    p.add_argument("--crf-max", type=int, default=34)
    p.add_argument("--max-downscale", type=float, default=AlignConfig.max_downscale,
                   help="as align.max_downscale at run time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="train")
    p.add_argument("--out", default=str(DATA / "video_seq"))
    add_models_option(p, "det_500m.onnx and fan68_compressed.pth")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...core.config import read_yaml
    from ...core.errors import InputError
    from ..eval_video import person_of
    from ..train.prepare import list_images
    from ..train.sequences import prepare_video

    set_threads(args.threads)
    split = read_yaml(args.split)
    train_names = set(split.get("train") or [])
    held_out = set(split.get("eval") or [])
    clips = []
    for c in args.clips:
        p = Path(c)
        for f in sorted(p.glob("*.mp4")) if p.is_dir() else [p]:
            person = person_of(f.stem, train_names | held_out)
            if person in held_out:  # evaluation people never enter training
                logging.getLogger(__name__).info("%s: held out for evaluation in %s, skipped", f.name, args.split)
                continue
            if person not in train_names:
                raise InputError(f"{f.name} is not in the train list of {args.split}: add it there first")
            clips.append(f)
    log = logging.getLogger(__name__)
    for c in args.clips:  # which folders fed the cache, so one left out (e.g. $ENHANCE_DATA unset) shows
        log.info("%s: %d training clips", c, sum(1 for f in clips if f == Path(c) or f.parent == Path(c)))
    stills = list_images(Path(args.stills))[: args.stills_limit or None] if args.stills else []
    counts = prepare_video(clips, stills, Path(args.out), args.models, args.renders, args.still_frames,
                           (args.min_px, args.max_px), (args.crf_min, args.crf_max), seed=args.seed,
                           max_downscale=args.max_downscale, name=args.name)
    return 0 if counts["frames"] else 1
