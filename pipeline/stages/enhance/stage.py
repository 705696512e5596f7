"""Enhance: the generator as a pipeline stage — aligned low-res crops in, 128×128 faces out.

Which faces are worth its time is the policy's decision (`policy.py`); the generator itself runs on a
backend from `backends` (tensorrt / torch-cuda / onnxruntime / torch-cpu) behind a `DynamicBatcher`.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Protocol

import numpy as np

from ...core.config import EnhanceConfig, stage_device
from ...core.devices import Device
from ...core.errors import ModelNotFound
from ...core.geometry import ENTRIES
from ...core.models import ENGINES, sha256
from ...core.types import Face
from .anchor import finish
from .confidence import assess


def default_weights(fusion: int = 0) -> Path:
    """The shipped generator, by name (`FUSION_WEIGHTS` when track fusion is on)."""
    from .fusion import FUSION_WEIGHTS
    from .generator import DEFAULT_WEIGHTS

    shipped = Path(FUSION_WEIGHTS if fusion else DEFAULT_WEIGHTS)
    if shipped.is_file():
        return shipped
    if fusion:  # a single-frame file cannot stand in for a fusion network
        raise ModelNotFound(f"track fusion (enhance.fusion={fusion}) needs fusion weights and none are shipped "
                            "(engines/MODEL_CARD.md says why): train them with configs/train_fusion.yaml and "
                            "pass enhance.weights=FILE")
    raise ModelNotFound(f"the default generator {shipped.name} is not in {ENGINES}; pass enhance.weights=FILE")


def item(face: Face, frames: int):  # noqa: ANN201 - an array the backend takes
    """What the backend gets for one face: its crop, or with fusion (`frames` > 0) its observations packed
    together. (Also what a remote Enhancer sends its generator.)"""
    if not frames:
        return face.lr
    from .fusion import pack

    return pack(face.lr, [n.lr for n in face.neighbours if n.entry == face.entry], frames)


class Generator(Protocol):
    """The network behind the stage: items in (LR crops, or packed observations with track fusion), 128×128
    BGR faces out. `LocalGenerator` runs it in this process; the Ray engine's stands in for a shared actor."""

    frames: int  # observations fused per output (0: a single-frame generator)

    @property
    def info(self) -> dict: ...

    def map(self, items: list[np.ndarray]) -> list[np.ndarray]: ...

    def close(self) -> None: ...


class LocalGenerator:
    """The generator on the chosen backend behind a dynamic batcher. Several camera threads may share one;
    their crops then share batches up to `batch_size` / `max_wait_ms`."""

    def __init__(self, cfg: EnhanceConfig, device: str | Device = "auto") -> None:
        """On `cfg.device`, else `device` (the top-level setting)."""
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
        self.frames = cfg.fusion if is_fusion(path) else 0
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
                              shapes=item_shapes(ENTRIES, self.frames), device=stage_device(cfg, device),
                              max_batch=cfg.batch_size * (2 if self.mirror else 1), cpu_precision=cfg.cpu_precision,
                              cuda_compile=cfg.cuda_compile)
        run = mirrored(self.backend.run, self.mirror) if self.mirror else self.backend.run
        self.batcher = DynamicBatcher(run, cfg.batch_size, cfg.max_wait_ms, cfg.max_queue)
        self._finalizer = weakref.finalize(self, self.batcher.close)

    @property
    def info(self) -> dict:
        """What runs, for the manifest: a file name alone is not enough to tell weights apart."""
        return {**self.meta, "path": str(self.path), "sha256": self.sha256, "fusion_frames": self.frames,
                "mirror": list(self.mirror), **self.backend.describe()}

    def map(self, items: list[np.ndarray], flush: bool = True) -> list[np.ndarray]:
        """One face per item (items of one shape share batches). `flush=False` lets concurrent callers'
        items wait for a fuller batch."""
        return self.batcher.map(items, flush=flush)

    def close(self) -> None:
        """Finish queued work and stop the batcher thread (also done at garbage collection)."""
        self._finalizer()


class Enhancer:
    """The enhance stage: aligned faces in, each with `enhanced` (128×128 BGR uint8, the generator's output
    anchored to the camera's crop at `enhance.strength`) and its confidence filled. The runner calls it per
    frame; the generator behind it is this process's own or one shared by many (`generator`)."""

    def __init__(self, cfg: EnhanceConfig, device: str | Device = "auto", generator: Generator | None = None) -> None:
        self.generator = generator if generator is not None else LocalGenerator(cfg, device)
        self.frames = self.generator.frames
        self.strength = cfg.strength
        self.count = 0
        self._lock = threading.Lock()

    @property
    def info(self) -> dict:
        return {**self.generator.info, "strength": self.strength}

    def __call__(self, faces: list[Face]) -> list[Face]:
        """Fill `enhanced` and the confidence of each face; returns `faces`."""
        if not faces:
            return faces
        for f, img in zip(faces, self.generator.map([item(f, self.frames) for f in faces])):
            f.enhanced = finish(img, f.lr, f.crop, self.strength)  # a new array: zero-copy results are read-only
            assess(f)
        with self._lock:
            self.count += len(faces)
        return faces

    def close(self) -> None:
        self.generator.close()
