"""`enhance-faces lab pack-video`: a `prepare-video` cache cut to a size that travels to a GPU machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...cli.common import DATA


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack-video", help="cut a prepare-video cache down to a byte budget (whole sequences, "
                                          "compressed)")
    p.add_argument("cache", nargs="?", default=str(DATA / "video_seq" / "train.npz"), help="the cache to pack")
    p.add_argument("--max-mb", type=float, default=50.0, help="size of the packed file in MB (10^6 bytes)")
    p.add_argument("--out", default=str(DATA / "video_seq" / "train_pack.npz"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...core.errors import InputError
    from ..train.pack import pack_video

    if args.max_mb <= 0:
        raise InputError(f"--max-mb must be positive, got {args.max_mb}")
    pack_video(Path(args.cache), Path(args.out), args.max_mb, args.seed)
    return 0
