"""`enhance-faces lab gpu-run`: the prepared job for a lent GPU (benchmark, then a training burst), and its data."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from ...cli.common import DATA, add_models_option, data

GPU_DATA = DATA / "gpu"


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpu-run", help="the one prepared GPU job: cameras per GPU, generator benchmark grid, "
                                       "then a training burst")
    p.add_argument("--out", default="out/gpu", help="folder for results.json and the trained weights")
    p.add_argument("--minutes", type=float, default=9.0, help="the whole job's time (default 9)")
    p.add_argument("--data", default=str(GPU_DATA), help="what --prepare wrote")
    p.add_argument("--weights", help="generator safetensors (default: the shipped one)")
    p.add_argument("--config", default="configs/train_v10.yaml", help="training recipe of the burst")
    p.add_argument("--dry-run", action="store_true", help="the same code on the CPU with a tiny grid (CI)")
    p.add_argument("--no-bench", action="store_true",
                   help="skip the generator grids (a rerun after a call that measured them: the burst gets the time)")
    p.add_argument("--tune", action="store_true",
                   help="first, the headline cell further: the backend host to host per compile mode and call size, "
                        "where a chunk's time goes, the compiled network alone at larger batches")
    p.add_argument("--no-train", action="store_true", help="skip the training burst")
    p.add_argument("--cameras-minutes", type=float, default=3.0,
                   help="time for cameras per GPU (the whole pipeline on N synthetic 1080p cameras); 0 skips it")
    p.add_argument("--prepare", action="store_true", help="on the CPU: write --data to carry with the call")
    p.add_argument("--clips", default=data("video", "talking_heads"),
                   help="--prepare: folder of talking-head clips the synthetic camera is made from "
                        "(default $ENHANCE_DATA/video/talking_heads; none: no cameras section)")
    p.add_argument("--faces", default=str(DATA / "faces128"), help="--prepare: output of `prepare`")
    p.add_argument("--video", default=str(DATA / "video_seq" / "train.npz"), help="--prepare: `prepare-video` cache")
    p.add_argument("--stills", type=int, default=None,
                   help="--prepare: still faces to carry (default: as many as fit in 0.3 of the room, at most 1200)")
    p.add_argument("--video-mb", type=float, default=None,
                   help="--prepare: size of the packed video cache in MB (default: the room the rest leaves)")
    p.add_argument("--no-wheels", action="store_true", help="--prepare: do not download the wheels the GPU lacks")
    add_models_option(p, "fan68_compressed.pth (the training burst's heatmap loss), and for --prepare with "
                         "--clips det_500m.onnx and mobilefacenet_128d.onnx")
    p.set_defaults(func=run)


def _tree_bytes() -> int:
    """Bytes of the checkout's tracked files: what a device call carries besides `carry`."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum(Path(n.decode()).stat().st_size for n in names if n and Path(n.decode()).is_file())


def run(args: argparse.Namespace) -> int:
    from ...core.errors import ConfigError
    from ...stages.enhance.stage import default_weights
    from ..gpu_run import prepare
    from ..gpu_run import run as gpu_run

    if args.minutes <= 0:
        raise ConfigError(f"--minutes must be positive, got {args.minutes}")
    if args.prepare:
        from ...core.models import find_model

        clips = sorted(Path(args.clips).glob("*.mp4")) if args.clips else []
        if args.clips and not clips:
            raise ConfigError(f"--clips: no .mp4 clips in {args.clips}")
        prepare(Path(args.data), Path(args.faces), Path(args.video), args.stills, args.video_mb, _tree_bytes(),
                find_model("fan68_compressed.pth", args.models), wheels=not args.no_wheels, camera_clips=clips,
                models_dir=args.models)
        return 0
    if args.cameras_minutes < 0:
        raise ConfigError(f"--cameras-minutes must be 0 or more, got {args.cameras_minutes}")
    gpu_run(Path(args.out), args.minutes, Path(args.data), Path(args.weights) if args.weights else default_weights(),
            args.config, args.dry_run, args.models, bench=not args.no_bench, tune=args.tune,
            cameras_minutes=args.cameras_minutes, train=not args.no_train)
    return 0
