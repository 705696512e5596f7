"""`run.py doctor`: what this machine can do, and why a piece is unavailable."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys

from ..errors import EnhanceError
from ..models import find_model, search_dirs, sha256
from .common import add_models_option

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
        return version({"cv2": "opencv-python-headless"}.get(module, module))
    except PackageNotFoundError:
        return getattr(m, "__version__", "present")


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="what this machine has: codecs, models, backends")
    add_models_option(p)
    p.set_defaults(func=lambda args: 0 if report(args.models) else 1)


def report(models_dir: str | None = None) -> bool:
    """Print the report; False when something the default run needs is missing."""
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
        from ..enhance.stage import default_weights

        w = default_weights()
        print(f"generator   {w.name}  sha256 {sha256(w)[:16]}…")
    except EnhanceError as e:
        print(f"generator   missing: {e}")
        ok = False

    from ..enhance.backends import backend_report

    print("backends")
    for line in backend_report():
        print(f"  {line}")
    print("status      " + ("ready" if ok else "something the default run needs is missing (see above)"), file=sys.stdout)
    return ok
