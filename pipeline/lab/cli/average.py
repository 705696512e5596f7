"""`enhance-faces lab average A B --weight W`: the weighted mean of two generators of one design.

Interpolating a fine-tuned network's weights with those it started from keeps part of what the fine-tune
learnt and pulls the rest back toward the parent, which is robust where the fine-tune's data was thin
(Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022). Both files must be one design
(the same tensors and shapes), or the first the network the second grew from by an entry path of its own
(`path32`/`path64`, same widths and blocks elsewhere): then the first is grown into the second's design
function-preservingly first, as training started it. The result is written as fp16 safetensors like an export.
"""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("average", help="write the weighted mean of two generators of one design")
    p.add_argument("first", help="generator .safetensors (weight 1 − W)")
    p.add_argument("second", help="generator .safetensors (weight W)")
    p.add_argument("--weight", type=float, default=0.5, help="W, the second file's share (default 0.5)")
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--name", required=True, help="generator name in the file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ...core.errors import InputError
    from ...stages.enhance.generator import ProgressiveGenerator, read_weights, save_generator

    if not 0.0 <= args.weight <= 1.0:
        raise InputError(f"--weight must be in [0, 1], got {args.weight}")
    arch_a, meta_a, a = read_weights(Path(args.first))
    arch_b, meta_b, b = read_weights(Path(args.second))
    if arch_a != arch_b and all(arch_a.get(k) == arch_b.get(k) for k in ("channels", "blocks")):
        from ..train.warmstart import grow_into

        start = ProgressiveGenerator(**arch_b)
        try:
            grow_into(start, a)
        except ValueError as e:
            raise InputError(f"{args.first} cannot grow into {args.second}'s design: {e}") from None
        arch_a, a = arch_b, start.state_dict()
    if arch_a != arch_b or a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise InputError(f"{args.first} and {args.second} are not one design: their tensors differ")
    w = args.weight
    model = ProgressiveGenerator(**arch_a)
    model.load_state_dict({k: (1 - w) * a[k].float() + w * b[k].float() for k in a})
    meta = {"name": args.name, "averaged": [{"file": Path(args.first).name, "share": 1 - w, "meta": meta_a},
                                            {"file": Path(args.second).name, "share": w, "meta": meta_b}]}
    path = save_generator(model, args.out, meta)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {1 - w:g} × {args.first} + {w:g} × {args.second}")
    return 0
