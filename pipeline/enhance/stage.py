"""Enhance: the generator as a pipeline stage — aligned low-res crops in, 128×128 faces out.

Which faces are worth its time is the policy's decision (`policy.py`); the generator itself runs on a
backend from `backends` (tensorrt / torch-cuda / onnxruntime / torch-cpu) behind a `DynamicBatcher`.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from ..config import EnhanceConfig
from ..errors import ModelNotFound
from ..geometry import ENTRIES
from ..models import ENGINES, sha256
from ..types import Face
from .confidence import assess


def default_weights() -> Path:
    """The shipped generator: the generator module's DEFAULT_WEIGHTS, else the newest file in engines/."""
    from .generator import DEFAULT_WEIGHTS

    if Path(DEFAULT_WEIGHTS).is_file():
        return Path(DEFAULT_WEIGHTS)
    found = sorted(ENGINES.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ModelNotFound(f"no generator weights (*.safetensors) in {ENGINES}; pass enhance.weights=FILE")
    return found[-1]


class Enhancer:
    """Aligned LR crops in, 128×128 faces out (BGR uint8), on the chosen backend through a dynamic batcher.

    The runner calls it synchronously per frame (`__call__` flushes at once); several camera threads
    may share one Enhancer, and their crops then share batches up to `batch_size` / `max_wait_ms`.
    """

    def __init__(self, cfg: EnhanceConfig, device: str = "auto") -> None:
        from .backends import create
        from .batcher import DynamicBatcher
        from .generator import load_generator

        path = Path(cfg.weights) if cfg.weights else default_weights()
        if not path.is_file():
            raise ModelNotFound(f"generator weights not found: {path}")
        self.path = path
        self.sha256 = sha256(path)
        model, self.meta = load_generator(path)
        # every entry's session/engine is made up front: the first frame must not pay for an export
        self.backend = create(cfg.backend, path, model=model, threads=cfg.threads, weights_sha=self.sha256,
                              entries=ENTRIES, device=cfg.device or device, max_batch=cfg.batch_size)
        self.batch_size = cfg.batch_size
        self.batcher = DynamicBatcher(self.backend.run, cfg.batch_size, cfg.max_wait_ms, cfg.max_queue)
        self._finalizer = weakref.finalize(self, self.batcher.close)
        self.count = 0
        self._lock = threading.Lock()

    @property
    def info(self) -> dict:
        """What ran, for the manifest: a file name alone is not enough to tell weights apart."""
        return {**self.meta, "path": str(self.path), "sha256": self.sha256, **self.backend.describe()}

    def __call__(self, faces: list[Face]) -> list[Face]:
        """Fill `enhanced` for each face (faces of one entry size share batches); returns `faces`."""
        if not faces:
            return faces
        for f, img in zip(faces, self.batcher.map([f.lr for f in faces])):
            f.enhanced = img
            assess(f)
        with self._lock:
            self.count += len(faces)
        return faces

    def close(self) -> None:
        """Finish queued work and stop the batcher thread (also done at garbage collection)."""
        self._finalizer()
