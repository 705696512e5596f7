"""`enhance-faces lab eval`: bicubic and the generator side by side on a folder of face photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...cli.common import add_data_option, add_models_option, require_extra, set_threads
from ...core.geometry import ENTRIES


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score bicubic and the generator on a folder of face photos")
    add_data_option(p, "--faces", "faces", "val", help="face photos to score on")
    p.add_argument("--degrade", choices=["clean", "cctv"], default="clean")
    p.add_argument("--entry", type=int, choices=list(ENTRIES), default=ENTRIES[0])
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--weights", default=None, help="generator safetensors (default: the one in engines/)")
    add_models_option(p, "det_500m.onnx, mobilefacenet_128d.onnx and pfld.onnx")
    p.add_argument("--out", default=None, help="folder for the per-image CSV and the sample sheet")
    p.add_argument("--json", default=None, help="also write the summary as JSON here")
    p.add_argument("--seed", type=int, default=0, help="seed of the cctv degradation")
    p.add_argument("--sheet", type=int, default=8, help="faces on the sample sheet")
    p.add_argument("--det-size", type=int, default=320, help="detector input size (as `prepare`)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--strength", type=float, default=None,
                   help="share of the generator's change kept over the bicubic input (default: enhance.strength)")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                   help="average each face with its mirror image's (default: as enhance.mirror does at this entry)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate, format_table

    require_extra("pytorch_msssim", "train")
    set_threads(args.threads)
    out = Path(args.out) if args.out else Path("runs") / "eval" / f"{args.degrade}_{args.entry}"
    summary = evaluate(
        Path(args.faces), args.entry, args.degrade, args.limit, args.weights, args.models, out, args.seed, args.sheet,
        det_size=args.det_size, strength=args.strength, mirror=args.mirror,
    )
    print(format_table(summary))
    print(f"per-image CSV: {summary['csv']}\nsample sheet: {summary['sheet']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2))
        print(f"summary: {args.json}")
    return 0
