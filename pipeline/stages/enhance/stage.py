"""Enhance: the generator as a pipeline stage — aligned low-res crops in, 128×128 faces out.

Which faces are worth its time is the policy's decision (`policy.py`); the generator itself runs on a
backend from `backends` (tensorrt / torch-cuda / onnxruntime / torch-cpu) behind a `DynamicBatcher`.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from ...core.config import EnhanceConfig
from ...core.errors import ModelNotFound
from ...core.geometry import ENTRIES
from ...core.models import ENGINES, sha256
from ...core.types import Face
from .anchor import finish
from .confidence import assess


def default_weights(fusion: int = 0) -> Path:
    """The shipped generator (`FUSION_WEIGHTS` when track fusion is on), else the newest file in engines/."""
    from .fusion import FUSION_WEIGHTS
    from .generator import DEFAULT_WEIGHTS

    shipped = Path(FUSION_WEIGHTS if fusion else DEFAULT_WEIGHTS)
    if shipped.is_file():
        return shipped
    if fusion:  # a single-frame file cannot stand in for a fusion network
        raise ModelNotFound(f"track fusion (enhance.fusion={fusion}) needs fusion weights and none are shipped "
                            "(engines/MODEL_CARD.md says why): train them with configs/train_fusion.yaml and "
                            "pass enhance.weights=FILE")
    found = sorted(ENGINES.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ModelNotFound(f"no generator weights (*.safetensors) in {ENGINES}; pass enhance.weights=FILE")
    return found[-1]


def item(face: Face, frames: int):  # noqa: ANN201 - an array the backend takes
    """What the backend gets for one face: its crop, or with fusion (`frames` > 0) its observations packed
    together. (Also what a remote Enhancer sends its generator.)"""
    if not frames:
        return face.lr
    from .fusion import pack

    return pack(face.lr, [n.lr for n in face.neighbours if n.entry == face.entry], frames)


class Enhancer:
    """Aligned LR crops in, 128×128 faces out (BGR uint8), on the chosen backend through a dynamic batcher.

    The runner calls it synchronously per frame (`__call__` flushes at once); several camera threads
    may share one Enhancer, and their crops then share batches up to `batch_size` / `max_wait_ms`.
    """

    def __init__(self, cfg: EnhanceConfig, device: str = "auto") -> None:
        from .backends import create, item_shapes
        from .batcher import DynamicBatcher
        from .fusion import PackedFusion, is_fusion, load_fusion
        from .generator import load_generator
        from .pixels import mirror_entries, mirrored

        path = Path(cfg.weights) if cfg.weights else default_weights(cfg.fusion)
        if not path.is_file():
            raise ModelNotFound(f"generator weights not found: {path}")
        self.path = path
        self.sha256 = sha256(path)
        self.frames = cfg.fusion if is_fusion(path) else 0  # observations fused per output (0: single frame)
        self.strength = cfg.strength
        if cfg.fusion and not self.frames:
            raise ModelNotFound(f"enhance.fusion is {cfg.fusion} but {path.name} is a single-frame generator "
                                "(set enhance.fusion: 0, or enhance.weights to a fusion file)")
        if self.frames:
            fusion, self.meta = load_fusion(path)
            model = PackedFusion(fusion).eval()
        else:
            model, self.meta = load_generator(path)
        self.mirror = mirror_entries(cfg.mirror)  # the entry sizes enhanced as seen and mirrored
        # every entry's session/engine is made up front: the first frame must not pay for an export; a mirrored
        # batch holds each face twice, and a TensorRT profile sized for that runs it in one go
        self.backend = create(cfg.backend, path, model=model, threads=cfg.threads, weights_sha=self.sha256,
                              shapes=item_shapes(ENTRIES, self.frames), device=cfg.device or device,
                              max_batch=cfg.batch_size * (2 if self.mirror else 1), cpu_precision=cfg.cpu_precision,
                              cuda_compile=cfg.cuda_compile)
        self.batch_size = cfg.batch_size
        run = mirrored(self.backend.run, self.mirror) if self.mirror else self.backend.run
        self.batcher = DynamicBatcher(run, cfg.batch_size, cfg.max_wait_ms, cfg.max_queue)
        self._finalizer = weakref.finalize(self, self.batcher.close)
        self.count = 0
        self._lock = threading.Lock()

    @property
    def info(self) -> dict:
        """What ran, for the manifest: a file name alone is not enough to tell weights apart."""
        return {**self.meta, "path": str(self.path), "sha256": self.sha256, "fusion_frames": self.frames,
                "strength": self.strength, "mirror": list(self.mirror),
                **self.backend.describe()}

    def __call__(self, faces: list[Face]) -> list[Face]:
        """Fill `enhanced` for each face (items of one shape share batches); returns `faces`."""
        if not faces:
            return faces
        for f, img in zip(faces, self.batcher.map([item(f, self.frames) for f in faces])):
            f.enhanced = finish(img, f.lr, f.crop, self.strength)
            assess(f)
        with self._lock:
            self.count += len(faces)
        return faces

    def close(self) -> None:
        """Finish queued work and stop the batcher thread (also done at garbage collection)."""
        self._finalizer()
