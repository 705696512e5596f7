"""`enhance-faces lab train`: train the progressive generator from a recipe (`configs/train*.yaml`)."""

from __future__ import annotations

import argparse

from ...cli.common import add_config_options, require_extra
from ...core.models import CONFIGS


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the progressive generator")
    add_config_options(p, "the training recipe (YAML)", "steps=100")
    p.set_defaults(config=str(CONFIGS / "train.yaml"))
    p.add_argument("--resume", default=None, help="checkpoint to continue from")
    p.add_argument("--out", default=None, help="override the config's out folder")
    p.add_argument("--steps", type=int, default=None, help="stop at this step (default: the config's steps)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.config import load_train_config
    from ..train.trainer import Trainer

    require_extra("pytorch_msssim", "train")
    cfg = load_train_config(args.config, args.overrides, {"out": args.out} if args.out else None)
    trainer = Trainer(cfg)
    if args.resume:
        trainer.load(args.resume)
    trainer.fit(args.steps)
    return 0
