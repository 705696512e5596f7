"""Enhance: which observations are worth the generator's time, and running it in batches.

On a 2-core CPU the generator cannot see every face of every frame, so a per-track policy picks
observations: `best_k` keeps the K best by quality (enhancing early only when a face clearly
beats the best so far, so the video inset improves as the track goes on), `every_n` and `all`
for when a GPU is there, `none` to only detect and track. The generator itself runs on a backend
from `backends` (tensorrt / torch-cuda / onnxruntime / torch-cpu) behind a `DynamicBatcher`.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
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

    def __init__(self, cfg: EnhanceConfig) -> None:
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
                              entries=ENTRIES)
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


@dataclass
class _TrackState:
    seen: int = 0
    best_enhanced: float = -1.0
    kept: list[Face] = field(default_factory=list)  # best_k: the top-K candidates, enhanced or pending


class Policy:
    """Per track, decides which observations to enhance now and which to keep for the gallery."""

    def __init__(self, mode: str = "best_k", k: int = 3, every_n: int = 10, improve: float = 0.15) -> None:
        self.mode, self.k, self.every_n, self.improve = mode, k, every_n, improve
        self._tracks: dict[int, _TrackState] = {}
        self._kept_all: dict[int, list[Face]] = {}

    def __call__(self, face: Face) -> bool:
        """Register a tracked, aligned observation; True when it should be enhanced now."""
        st = self._tracks.setdefault(face.track_id, _TrackState())
        st.seen += 1
        if self.mode == "none":
            return False
        if self.mode == "all" or (self.mode == "every_n" and (st.seen - 1) % self.every_n == 0):
            self._kept_all.setdefault(face.track_id, []).append(face)
            return True
        if self.mode != "best_k":
            return False
        if len(st.kept) >= self.k and face.quality <= st.kept[-1].quality:
            return False
        st.kept.append(face)
        st.kept.sort(key=lambda f: -f.quality)
        for dropped in st.kept[self.k :]:
            dropped.crop = dropped.lr = dropped.enhanced = None  # bounded memory on long tracks
        del st.kept[self.k :]
        if st.best_enhanced < 0 or face.quality > st.best_enhanced * (1 + self.improve):
            st.best_enhanced = face.quality
            return True
        return False

    def keeps(self, face: Face) -> bool:
        """Whether the policy may still need this observation's pixels (a best_k candidate)."""
        st = self._tracks.get(face.track_id)
        return st is not None and any(face is k for k in st.kept)

    def finish(self, track_id: int) -> tuple[list[Face], list[Face]]:
        """(still to enhance, all kept) for an ended track; forgets the track."""
        st = self._tracks.pop(track_id, _TrackState())
        if self.mode == "best_k":
            return [f for f in st.kept if f.enhanced is None], list(st.kept)
        kept = self._kept_all.pop(track_id, [])
        return [], kept
