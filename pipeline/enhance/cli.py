"""`run.py bench` and `run.py build-engine`; `add_commands(sub)` registers them on the main parser."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT.parent / "shared" / "data" / "video" / "office_fisheye_cctv.mp4"
VAL = ROOT.parent / "shared" / "data" / "faces" / "val"


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import FULL_BATCHES, bench_e2e, bench_generator, host, precision_check, table, write_json
    from ..errors import ConfigError
    from .backends import BACKENDS, availability
    from .stage import default_weights

    weights = Path(args.weights) if args.weights else default_weights()
    bad = [e for e in args.entries if e not in (16, 32, 64)]
    if bad:
        raise ConfigError(f"--entries: {bad} not in 16, 32, 64")
    names = args.backends or [n for n, (ok, _) in availability().items() if ok]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ConfigError(f"--backends: unknown {unknown} (known: {', '.join(BACKENDS)})")
    if args.clip != "none":  # fail now, not after minutes of generator timings
        _check_e2e_inputs(args)
    batches = list(FULL_BATCHES) if args.full else args.batches
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": host(),
                    "weights": str(weights), "budget_s": args.budget,
                    "note": "wall-clock on a possibly shared machine; see host.load_avg"}
    print(f"weights {weights}; backends {', '.join(names)}; batches {batches}; entries {args.entries}")
    result["generator"] = bench_generator(weights, names, batches, args.entries, args.budget, args.threads)
    print(table(result["generator"]))
    if args.precision:
        result["precision"] = precision_check(weights, args.faces, args.precision_limit, args.native_limit,
                                              args.entries)
    if args.clip != "none":
        result["e2e"] = []
        for name in args.e2e_backends or ["auto"]:
            r = bench_e2e(args.clip, name, args.overrides, args.models, args.config, str(weights))
            result["e2e"].append(r)
            stages = "  ".join(f"{k} {v:.1f}s" for k, v in sorted(r["timings"].items(), key=lambda kv: -kv[1]))
            print(f"e2e {r['backend']}: {r['frames']} frames in {r['wall_s']:.1f}s, "
                  f"{r['realtime_factor']}x real time, {r['enhanced']} enhanced; {stages}")
    out = write_json(args.json, result)
    out.with_suffix(".md").write_text(table(result["generator"]) + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def _check_e2e_inputs(args: argparse.Namespace) -> None:
    """The end-to-end run's config, clip and detector model must be there before the long part starts."""
    from ..config import load_config
    from ..errors import InputError
    from ..models import find_model

    cfg = load_config(args.config, args.overrides)
    if "://" not in str(args.clip) and not Path(args.clip).is_file():
        raise InputError(f"--clip: file not found: {args.clip} (or pass --clip none)")
    find_model(cfg.detect.model, args.models)


def cmd_build_engine(args: argparse.Namespace) -> int:
    from .export import cached_onnx, onnx_metadata
    from .stage import default_weights
    from .tensorrt import Profile, TensorRTError, available, ensure_engines

    weights = Path(args.weights) if args.weights else default_weights()
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
    ensure_engines(weights, tuple(args.entries), profile, args.cache, log=print)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="generator throughput per backend × batch × entry, and end-to-end speed")
    p.add_argument("--weights", help="generator safetensors (default: the shipped one in engines/)")
    p.add_argument("--backends", type=_names, help="comma-separated (default: every available backend)")
    p.add_argument("--batches", type=_ints, default=[1, 16, 64], help="comma-separated batch sizes (default 1,16,64)")
    p.add_argument("--full", action="store_true", help="batches 1,16,64,256,1024 (meant for a GPU)")
    p.add_argument("--entries", type=_ints, default=[16, 32, 64], help="entry sizes (default 16,32,64)")
    p.add_argument("--budget", type=float, default=2.0, help="seconds per cell (at least one run; default 2)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch/onnxruntime (0 = default)")
    p.add_argument("--clip", default=str(CLIP), help="clip for the end-to-end run ('none' to skip)")
    p.add_argument("--e2e-backends", type=_names, help="backends for the end-to-end run (default auto)")
    p.add_argument("--precision", action="store_true", help="also measure fp16/bf16 vs fp32 PSNR on val faces")
    p.add_argument("--faces", default=str(VAL), help="val face folder for --precision")
    p.add_argument("--precision-limit", type=int, default=0, help="faces for the emulated check (0 = all)")
    p.add_argument("--native-limit", type=int, default=16, help="faces per entry for native CPU fp16/bf16 (slow)")
    p.add_argument("--json", default="out/bench/bench.json", help="where to write the JSON (and a .md table)")
    p.add_argument("--config", help="YAML config for the end-to-end run")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--models", help="folder with the detector models")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("build-engine", help="export the generator to ONNX and build TensorRT engines (cached)")
    p.add_argument("--weights", help="generator safetensors (default: the shipped one in engines/)")
    p.add_argument("--entries", type=_ints, default=[16, 32, 64])
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int, default=64)
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--fp32", action="store_true", help="build without the FP16 flag")
    p.add_argument("--onnx-only", action="store_true", help="only export/refresh the ONNX files (no TensorRT needed)")
    p.add_argument("--cache", help="cache folder (default engines/cache)")
    p.set_defaults(func=cmd_build_engine)
