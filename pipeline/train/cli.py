"""Subcommands `prepare`, `train`, `export`, `eval` for run.py (`add_commands`), also runnable as
`python -m pipeline.train.cli ...`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import AlignConfig

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def _default_models() -> str | None:
    return str(SHARED / "models") if (SHARED / "models").is_dir() else None


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare import prepare

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    counts = prepare(
        Path(args.faces), Path(args.out), args.models, tuple(args.splits), args.limit, args.quality, args.det_size
    )
    return 0 if all(counts.values()) else 1


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_train_config
    from .trainer import Trainer

    cfg = load_train_config(args.config, args.overrides, {"out": args.out} if args.out else None)
    trainer = Trainer(cfg)
    if args.resume:
        trainer.load(args.resume)
    trainer.fit(args.steps)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    import torch

    from ..enhance.generator import ProgressiveGenerator, save_generator
    from ..errors import InputError
    from .config import saved_train_config

    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"checkpoint not found: {args.checkpoint}") from None
    cfg = saved_train_config(json.loads(state["config"]))
    g = ProgressiveGenerator(**dataclasses.asdict(cfg.model))
    g.load_state_dict(state["G_ema"])
    meta = {
        "name": args.name or cfg.name,
        "init": cfg.init or None,
        "steps": int(state["step"]),
        "samples": int(state["samples"]),
        "train_seconds": round(float(state["train_seconds"])),
        "trained_on": "CelebA test-partition crops (../shared/data/faces/train), aligned by `prepare`",
        "seed": cfg.seed,
        "ema": cfg.ema,
    }
    path = save_generator(g, args.out, meta)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, step {meta['steps']})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluate import run_eval

    return run_eval(args)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="detect, align and cache the training/validation faces")
    p.add_argument("--faces", default=str(SHARED / "data" / "faces"), help="folder with train/ and val/ photos")
    p.add_argument("--out", default=str(REPO / "data" / "faces128"), help="where the aligned 128 px faces go")
    p.add_argument("--models", default=_default_models(), help="model folder (det_500m.onnx, fan68_compressed.pth)")
    p.add_argument("--splits", nargs="+", default=["train", "val"])
    p.add_argument("--limit", type=int, default=0, help="only the first N photos of each split")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the cached crops")
    p.add_argument("--det-size", type=int, default=320, help="detector input size (the photos are ~200 px)")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train the progressive generator")
    p.add_argument("--config", default=str(REPO / "configs" / "train.yaml"))
    p.add_argument("--resume", default=None, help="checkpoint to continue from")
    p.add_argument("--out", default=None, help="override the config's out folder")
    p.add_argument("--steps", type=int, default=None, help="stop at this step (default: the config's steps)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (top-level or section.key)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="write a checkpoint's EMA generator as fp16 safetensors")
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None)
    p.add_argument("--name", default=None, help="generator name in the file (default: the run config's `name`)")
    p.set_defaults(func=lambda a: cmd_export(_export_default(a)))

    p = sub.add_parser("eval", help="score bicubic and the generator on a folder of face photos")
    p.add_argument("--faces", default=str(SHARED / "data" / "faces" / "val"))
    p.add_argument("--degrade", choices=["clean", "cctv"], default="clean")
    p.add_argument("--entry", type=int, choices=[16, 32, 64], default=16)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--weights", default=None, help="generator safetensors (default: the one in engines/)")
    p.add_argument("--models", default=_default_models())
    p.add_argument("--out", default=None, help="folder for the per-image CSV and the sample sheet")
    p.add_argument("--json", default=None, help="also write the summary as JSON here")
    p.add_argument("--seed", type=int, default=0, help="seed of the cctv degradation")
    p.add_argument("--sheet", type=int, default=8, help="faces on the sample sheet")
    p.add_argument("--det-size", type=int, default=320, help="detector input size (as `prepare`)")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=cmd_eval)
    add_eval_video(sub)

    p = sub.add_parser("prepare-video", help="make training sequences the way the pipeline sees faces in video")
    p.add_argument("--clips", nargs="*", default=[str(SHARED / "data" / "video" / "talking_heads")],
                   help="high-res face clips (only those in the split's train list are used)")
    p.add_argument("--split", default=str(REPO / "configs" / "video_split.yaml"), help="train/eval split by person")
    p.add_argument("--stills", default=str(SHARED / "data" / "faces" / "train"),
                   help="face photos turned into short clips ('' for none)")
    p.add_argument("--stills-limit", type=int, default=0)
    p.add_argument("--renders", type=int, default=8, help="camera renderings of each clip")
    p.add_argument("--still-frames", type=int, default=6)
    p.add_argument("--min-px", type=float, default=14.0)
    p.add_argument("--max-px", type=float, default=44.0)
    p.add_argument("--crf-min", type=int, default=20)
    p.add_argument("--crf-max", type=int, default=34)
    p.add_argument("--max-downscale", type=float, default=AlignConfig.max_downscale, help="as align.max_downscale at run time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="train")
    p.add_argument("--out", default=str(REPO / "data" / "video_seq"))
    p.add_argument("--models", default=_default_models())
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=cmd_prepare_video)


def cmd_prepare_video(args: argparse.Namespace) -> int:
    import torch

    from ..config import read_yaml
    from ..errors import InputError
    from .prepare import list_images
    from .sequences import prepare_video

    if args.threads:
        torch.set_num_threads(args.threads)
    split = read_yaml(args.split)
    train_names = set(split.get("train") or [])
    held_out = set(split.get("eval") or [])
    clips = []
    for c in args.clips:
        p = Path(c)
        for f in sorted(p.glob("*.mp4")) if p.is_dir() else [p]:
            if f.stem in held_out:  # evaluation people never enter training
                print(f"{f.name}: held out for evaluation in {args.split}, skipped")
                continue
            if f.stem not in train_names:
                raise InputError(f"{f.name} is not in the train list of {args.split}: add it there first")
            clips.append(f)
    stills = list_images(Path(args.stills))[: args.stills_limit or None] if args.stills else []
    counts = prepare_video(clips, stills, Path(args.out), args.models, args.renders, args.still_frames,
                           (args.min_px, args.max_px), (args.crf_min, args.crf_max), seed=args.seed,
                           max_downscale=args.max_downscale, name=args.name)
    return 0 if counts["frames"] else 1


def add_eval_video(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-video", help="score the generator against the truth on real high-res face video")
    p.add_argument("clips", nargs="+", metavar="CLIP", help="high-resolution face clips (files or folders of .mp4)")
    p.add_argument("--face-px", default="16,20,24,32,40", help="face heights to shrink to (comma-separated)")
    p.add_argument("--crf", type=int, default=26, help="H.264 CRF of the camera-like encode")
    p.add_argument("--weights", default=None, help="generator safetensors (default: the one in engines/)")
    p.add_argument("--models", default=_default_models())
    p.add_argument("--out", default="runs/eval_video", help="working folder: camera clips, runs, sample sheets")
    p.add_argument("--json", default=None, help="also write the summary here")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="pipeline setting for the runs, e.g. --set align.max_downscale=2")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=cmd_eval_video)


def cmd_eval_video(args: argparse.Namespace) -> int:
    from ..eval_video import run_eval_video

    return run_eval_video(args)


def _export_default(a: argparse.Namespace) -> argparse.Namespace:
    if a.out is None:
        from ..enhance.generator import DEFAULT_WEIGHTS

        a.out = str(DEFAULT_WEIGHTS)
    return a


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.train.cli CMD …` is `run.py CMD …`: one parser, one error policy."""
    from ..cli import main as run_main

    return run_main(argv)


if __name__ == "__main__":
    sys.exit(main())
