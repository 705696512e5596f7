"""`enhance-faces doctor`: what this machine can do, which processor each model would run on, and why a piece is
unavailable. `--set device=cuda:0` (or a stage's own `device`) shows the choice a run would make with it."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from pathlib import Path

from ..core.errors import EnhanceError
from ..core.models import cache_dir, find_model, search_dirs, sha256
from .common import add_config_options, add_models_option

MODELS = {
    "det_500m.onnx": "SCRFD-500M detector (default)",
    "det_2.5g.onnx": "SCRFD-2.5G detector (tiny faces)",
    "mobilefacenet_128d.onnx": "face embedding (evaluation, clustering)",
    "pfld.onnx": "68 landmarks (evaluation)",
    "fan68_compressed.pth": "FAN heatmaps (training loss)",
}


def _version(module: str) -> str:
    try:
        m = importlib.import_module(module)
    except Exception as e:  # report, don't crash: that's the point of doctor
        return f"unavailable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version({"cv2": "opencv-python"}.get(module, module))
    except PackageNotFoundError:
        return getattr(m, "__version__", "present")


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="what this machine has: codecs, models, backends")
    add_models_option(p)
    add_config_options(p, example="device=cuda:0")
    p.set_defaults(func=lambda args: 0 if report(args.models, args.config, args.overrides) else 1)


def report(models_dir: str | None = None, config: str | None = None, overrides: list[str] | None = None) -> bool:
    """Print the report; False when something the default run needs is missing."""
    from ..core.config import load_config

    cfg = load_config(config, overrides)
    ok = True
    print(f"python      {platform.python_version()} on {platform.system()} {platform.machine()}")
    for mod in ("numpy", "cv2", "av", "onnxruntime", "insightface", "trackers", "torch", "safetensors"):
        print(f"{mod:<12}{_version(mod)}")

    import av

    enc = "yes" if "libx264" in av.codecs_available else "NO (annotated video needs it)"
    dec = ", ".join(c for c in ("h264", "hevc", "mpeg4", "msmpeg4", "vp9", "av1", "mjpeg") if c in av.codecs_available)
    print(f"codecs      H.264 encoder (libx264): {enc}; decoders: {dec}")
    ok &= "libx264" in av.codecs_available

    print("models      searched: " + ", ".join(str(d) for d in search_dirs(models_dir)[:3]) + ", insightface packs")
    for name, what in MODELS.items():
        try:
            path = find_model(name, models_dir)
            print(f"  ok   {name:<26}{what}  {path}  sha256 {sha256(path)[:16]}…")
        except EnhanceError:
            print(f"  --   {name:<26}{what}  not found")
            ok &= name != "det_500m.onnx"

    try:
        from ..stages.enhance.stage import default_weights

        w = default_weights()
        print(f"generator   {w.name}  sha256 {sha256(w)[:16]}…")
    except EnhanceError as e:
        print(f"generator   missing: {e}")
        ok = False

    print(f"cache       {cache_dir()}  ($ENHANCE_CACHE overrides)")
    print(f"devices     device {cfg.device}")
    lines, runs = provider_lines(cfg, models_dir)
    for line in lines:
        print(f"  {line}")
    ok &= runs
    print("backends")
    for line in backend_report(cfg.device_of(cfg.enhance)):
        print(f"  {line}")
    print("status      " + ("ready" if ok else "something the default run needs is missing (see above)"), file=sys.stdout)
    return ok


def provider_lines(cfg, models_dir: str | None = None) -> tuple[list[str], bool]:
    """Per model, the processor a run with `cfg` would use and why (the ONNX models are loaded);
    False when the detector or the generator cannot run as configured."""
    from ..report.people import Embedder
    from ..stages.detect import Detector
    from ..stages.enhance.backends import BackendUnavailable, availability, resolve

    lines, ok = [], True
    for what, stage in (("detector", cfg.detect), ("embedder", cfg.people)):
        try:  # either may run in torch (`runtime`)
            if what == "detector":
                choice = Detector(stage, models_dir, cfg.device_of(stage)).choice
            else:
                choice = Embedder(find_model(stage.model, models_dir), stage.threads, cfg.device_of(stage),
                                  stage.runtime).choice
            lines.append(f"{what:<10} {stage.model:<26} {choice.names[0]}  ({choice.why})")
        except EnhanceError as e:
            lines.append(f"{what:<10} {stage.model:<26} --  {e}")
            ok &= what != "detector"
    found = availability()
    device = cfg.device_of(cfg.enhance)
    weights = Path(cfg.enhance.weights).name if cfg.enhance.weights else "(shipped weights)"
    try:
        pick = resolve(cfg.enhance.backend, found, device)
        why = found[pick[0]][1] if pick else "no backend available"
        lines.append(f"{'generator':<10} {weights:<26} {pick[0] if pick else '--'}  "
                     f"(enhance.backend {cfg.enhance.backend}, device {device}: {why})")
    except BackendUnavailable as e:
        lines.append(f"{'generator':<10} {weights:<26} --  {e}")
        ok = False
    return lines, ok


def backend_report(device: str = "auto") -> list[str]:
    """Each generator backend, whether it can run here and why not, and auto's pick on `device`."""
    from ..stages.enhance.backends import BackendUnavailable, availability, resolve

    found = availability()
    lines = [f"  {n:<13} {'available: ' if ok else 'unavailable: '}{why}" for n, (ok, why) in found.items()]
    try:
        pick = resolve("auto", found, device)
    except BackendUnavailable as e:
        return [*lines, f"  auto       → none: {e}"]
    lines.append(f"  auto       → {pick[0] if pick else 'none'}"
                 + (f" (then {', '.join(pick[1:])} as fallback)" if len(pick) > 1 else ""))
    return lines
