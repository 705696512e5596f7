"""`enhance-faces bench`: generator throughput per backend × batch × entry, and the pipeline's end-to-end speed."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..core.geometry import ENTRIES
from .common import add_config_options, add_models_option, check_entries, ints, names, set_threads


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="generator throughput per backend × batch × entry, and end-to-end speed")
    p.add_argument("--weights", help="generator safetensors (default: the shipped one in engines/)")
    p.add_argument("--backends", type=names, help="comma-separated (default: every available backend)")
    p.add_argument("--batches", type=ints, default=[1, 16, 64], help="comma-separated batch sizes (default 1,16,64)")
    p.add_argument("--full", action="store_true", help="batches 1,16,64,256,1024 (meant for a GPU)")
    p.add_argument("--entries", type=ints, default=list(ENTRIES), help="entry sizes (default 16,32,64)")
    p.add_argument("--fusion", type=int, default=8, help="observations per fused output, for a fusion weights file")
    p.add_argument("--budget", type=float, default=2.0, help="seconds per cell (at least one run; default 2)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch/onnxruntime (0 = default)")
    p.add_argument("--cpu-precision", type=names, default=["auto"],
                   help="torch-cpu precision(s): auto, fp32, bf16, comma-separated to compare (default auto)")
    p.add_argument("--clip", default="none", help="a clip for an end-to-end run of the pipeline (default: none)")
    p.add_argument("--e2e-backends", type=names, help="backends for the end-to-end run (default auto)")
    p.add_argument("--precision", action="store_true", help="also measure fp16/bf16 vs fp32 PSNR on val faces")
    p.add_argument("--faces", help="folder of val face photos for --precision")
    p.add_argument("--precision-limit", type=int, default=0, help="faces for the emulated check (0 = all)")
    p.add_argument("--native-limit", type=int, default=16, help="faces per entry for native CPU fp16/bf16 (slow)")
    p.add_argument("--json", default="out/bench/bench.json", help="where to write the JSON (and a .md table)")
    add_config_options(p, "YAML config for the end-to-end run")
    add_models_option(p, "the detector models")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.errors import ConfigError
    from ..run.bench import FULL_BATCHES, bench_e2e, bench_generator, host, precision_check, table, write_json
    from ..stages.enhance.backends import BACKENDS, CPU_PRECISIONS, availability
    from ..stages.enhance.stage import default_weights

    weights = Path(args.weights) if args.weights else default_weights()
    check_entries(args.entries)
    backends = args.backends or [n for n, (ok, _) in availability().items() if ok]
    unknown = [n for n in backends if n not in BACKENDS]
    if unknown:
        raise ConfigError(f"--backends: unknown {unknown} (known: {', '.join(BACKENDS)})")
    if set(args.cpu_precision) - set(CPU_PRECISIONS):
        raise ConfigError(f"--cpu-precision: {','.join(args.cpu_precision)} (known: {', '.join(CPU_PRECISIONS)})")
    if args.precision and not args.faces:
        raise ConfigError("--precision needs --faces FOLDER (face photos to measure on)")
    if args.clip != "none":  # fail now, not after minutes of generator timings
        _check_e2e_inputs(args)
    set_threads(args.threads)
    batches = list(FULL_BATCHES) if args.full else args.batches
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": host(),
                    "weights": str(weights), "budget_s": args.budget,
                    "note": "wall-clock on a possibly shared machine; see host.load_avg"}
    print(f"weights {weights}; backends {', '.join(backends)}; batches {batches}; entries {args.entries}")
    result["generator"] = bench_generator(weights, backends, batches, args.entries, args.budget, args.threads,
                                          fusion=args.fusion, cpu_precisions=tuple(args.cpu_precision))
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
    from ..core.config import load_config
    from ..core.errors import InputError
    from ..core.models import find_model

    cfg = load_config(args.config, args.overrides)
    if "://" not in str(args.clip) and not Path(args.clip).is_file():
        raise InputError(f"--clip: file not found: {args.clip} (or pass --clip none)")
    find_model(cfg.detect.model, args.models)
