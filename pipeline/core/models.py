"""Where files come from and go: models from --models DIR, then $ENHANCE_MODELS, then insightface's model
folder; what the program ships (generator weights, model card, configs) from the top-level `engines/` and
`configs/` of a checkout, or from the copies a wheel carries inside the package; everything derived from
them (ONNX exports, TensorRT engines) in a per-user cache folder, never beside the
code, which may be read-only or the interpreter's own."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import ModelNotFound

DISTRIBUTION = "enhance-faces"  # the name on the package index; also names the per-user cache folder
CACHE_ENV = "ENHANCE_CACHE"  # overrides the cache folder
PACKAGE = Path(__file__).resolve().parents[1]  # pipeline/
SHIPPED = "shipped"  # pyproject.toml maps engines/ and configs/ to pipeline/shipped/… inside a wheel


def shipped(folder: str) -> Path:
    """A folder the program ships: the copy inside an installed wheel, else the checkout's top-level one.

    The top-level folders are the source of truth (an editable install and `run.py` read them in place);
    a wheel has no checkout around it, so the build maps them into the package.
    """
    inside = PACKAGE / SHIPPED / folder
    return inside if inside.is_dir() else PACKAGE.parent / folder


ENGINES = shipped("engines")  # shipped generator weights and their model card
CONFIGS = shipped("configs")  # default.yaml and the training recipes


def cache_dir() -> Path:
    """ONNX exports and TensorRT engines, keyed by weights hash: $ENHANCE_CACHE, else
    the user's cache folder (`~/.cache/enhance-faces` on Linux). Read at each call, so a service or a test
    can point it elsewhere without re-importing."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path(DISTRIBUTION, appauthor=False)
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
