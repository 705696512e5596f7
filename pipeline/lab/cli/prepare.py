"""`enhance-faces lab prepare`: detect, align and cache the training and validation faces."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...cli.common import DATA, add_data_option, add_models_option, set_threads


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="detect, align and cache the training/validation faces")
    add_data_option(p, "--faces", "faces", help="folder with train/ and val/ photos")
    p.add_argument("--out", default=str(DATA / "faces128"), help="where the aligned 128 px faces go")
    add_models_option(p, "det_500m.onnx and fan68_compressed.pth")
    p.add_argument("--splits", nargs="+", default=["train", "val"])
    p.add_argument("--limit", type=int, default=0, help="only the first N photos of each split")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the cached crops")
    p.add_argument("--det-size", type=int, default=320, help="detector input size (the photos are ~200 px)")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.prepare import prepare

    set_threads(args.threads)
    counts = prepare(
        Path(args.faces), Path(args.out), args.models, tuple(args.splits), args.limit, args.quality, args.det_size
    )
    return 0 if all(counts.values()) else 1
