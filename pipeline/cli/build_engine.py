"""`enhance-faces build-engine`: export the generator to ONNX and build TensorRT engines (both cached)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.geometry import ENTRIES
from .common import check_entries, ints

_LOG = logging.getLogger(__name__)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-engine", help="export the generator to ONNX and build TensorRT engines (cached)")
    p.add_argument("--weights", help="generator safetensors (default: the shipped one in engines/)")
    p.add_argument("--entries", type=ints, default=list(ENTRIES))
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int, default=64)
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--fp32", action="store_true", help="build without the FP16 flag")
    p.add_argument("--onnx-only", action="store_true", help="only export/refresh the ONNX files (no TensorRT needed)")
    p.add_argument("--cache", help="cache folder (default: $ENHANCE_CACHE, else the user cache folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..stages.enhance.export import cached_onnx, onnx_metadata
    from ..stages.enhance.stage import default_weights
    from ..stages.enhance.tensorrt import Profile, TensorRTError, available, ensure_engines

    weights = Path(args.weights) if args.weights else default_weights()
    check_entries(args.entries)
    try:
        profile = Profile(args.min_batch, args.opt_batch, args.max_batch, fp16=not args.fp32)
    except ValueError as e:
        raise TensorRTError(str(e)) from None
    for e in args.entries:
        path = cached_onnx(weights, e, args.cache)
        print(f"onnx   e{e}: {path} (opset {onnx_metadata(path).get('opset')})")
    if args.onnx_only:
        return 0
    ok, why = available()
    if not ok:
        raise TensorRTError(f"cannot build a TensorRT engine here: {why} (the ONNX files above are ready)")
    ensure_engines(weights, tuple(args.entries), profile, args.cache, log=_LOG.info)
    return 0
