"""`enhance-faces lab export CHECKPOINT`: a training checkpoint's EMA generator as fp16 safetensors."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a checkpoint's EMA generator as fp16 safetensors")
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="default: the shipped generator's file in engines/")
    p.add_argument("--name", default=None, help="generator name in the file (default: the run config's `name`)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from ...core.errors import InputError
    from ...stages.enhance.fusion import FusionGenerator, save_fusion
    from ...stages.enhance.generator import DEFAULT_WEIGHTS, save_generator
    from ..train.config import saved_train_config
    from ..train.trainer import build_generator

    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"checkpoint not found: {args.checkpoint}") from None
    cfg = saved_train_config(json.loads(state["config"]))
    g = build_generator(cfg)
    g.load_state_dict(state["G_ema"])
    meta = {
        "name": args.name or cfg.name,
        "init": cfg.init or None,
        "steps": int(state["step"]),
        "samples": int(state["samples"]),
        "train_seconds": round(float(state["train_seconds"])),
        "trained_on": "CelebA test-partition crops (../shared/data/faces/train), aligned by `prepare`"
        + (f"; camera-like video frames ({cfg.video}, share {cfg.video_shares})" if cfg.video else ""),
        "seed": cfg.seed,
        "ema": cfg.ema,
    }
    if isinstance(g, FusionGenerator):
        if not args.out:
            raise InputError("a fusion checkpoint needs --out (the shipped single-frame file is not replaced by it)")
        path = save_fusion(g, args.out, {**meta, "fusion_frames": cfg.fusion})
    else:
        path = save_generator(g, args.out or DEFAULT_WEIGHTS, meta)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, step {meta['steps']})")
    return 0
