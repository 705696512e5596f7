"""Where model files come from: --models DIR, then $ENHANCE_MODELS, then insightface's model folder; the
generator's shipped weights and their exported engines live in the repository's `engines/`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import ModelNotFound

ENGINES = Path(__file__).resolve().parents[1] / "engines"  # shipped generator weights and their model card
ENGINE_CACHE = ENGINES / "cache"  # ONNX exports, TensorRT engines and AOTInductor packages, keyed by weights hash
INSIGHTFACE_HOME = Path(os.environ.get("INSIGHTFACE_HOME", Path.home() / ".insightface")) / "models"
# insightface model packs that carry the same SCRFD files (the user can get them with
# `python -c "import insightface; insightface.app.FaceAnalysis(name='buffalo_sc')"`).
PACKS = ("buffalo_sc", "buffalo_s", "buffalo_m", "buffalo_l")


def search_dirs(models_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for models, in order."""
    dirs: list[Path] = []
    if models_dir:
        dirs.append(Path(models_dir))
    env = os.environ.get("ENHANCE_MODELS")
    if env:
        dirs.append(Path(env))
    dirs.append(INSIGHTFACE_HOME)
    dirs.extend(INSIGHTFACE_HOME / p for p in PACKS)
    return dirs


def find_model(name: str, models_dir: str | Path | None = None) -> Path:
    """Resolve a model file name (or an explicit path) or raise a one-line error naming where we looked."""
    direct = Path(name)
    if direct.is_absolute() or direct.parent != Path("."):
        if direct.is_file():
            return direct
        raise ModelNotFound(f"model file not found: {direct}")
    dirs = search_dirs(models_dir)
    for d in dirs:
        if (d / name).is_file():
            return d / name
    looked = ", ".join(str(d) for d in dirs[:3])
    raise ModelNotFound(
        f"model '{name}' not found (looked in {looked} and insightface packs); "
        "pass --models DIR or set ENHANCE_MODELS"
    )


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
