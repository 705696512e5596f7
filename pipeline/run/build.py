"""The stages built once from a Config and shared by every source: one detector, one aligner, one
generator (behind its batcher), one annotator, the provenance signer, the progress display and the
connections events go out on (MQTT, webhook)."""

from __future__ import annotations

import platform
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..core.config import Config
from ..core.errors import EnhanceError
from ..core.models import sha256
from ..core.version import __version__
from ..io.provenance import signer_from_config
from ..io.publish import Shared
from ..io.sinks.annotate import Annotator
from ..io.sinks.network import Network
from ..stages.align import Aligner
from ..stages.detect import Detector
from ..stages.enhance.stage import Enhancer, Generator
from .progress import ProgressBoard, ProgressSettings


def open_catalog(cfg: Config, models_dir: str | Path | None):
    """The catalogue every session writes its finished tracks into (needs the `catalog` extra)."""
    try:
        from ..catalog.sink import Catalog
    except ImportError as e:
        raise EnhanceError(f"catalog.url needs `{e.name}`: pip install 'enhance-faces[catalog]'") from None
    return Catalog(cfg, models_dir)


class Turns:
    """A lock granted in the order it was asked for (a plain lock lets one thread take it again and again):
    live cameras sharing the detector take turns, so none goes seconds without a frame while others run."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = self._serving = 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._cond:
            ticket, self._next = self._next, self._next + 1
            while ticket != self._serving:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()


class Stages:
    """Shared by the sessions of every source; `close` finishes the generator's queued work."""

    def __init__(self, cfg: Config, models_dir: str | Path | None = None,
                 progress: bool | str | ProgressSettings = True, generator: Generator | None = None) -> None:
        """`generator`: one already running (e.g. an actor shared by many processes); by default the enhance
        stage builds its own."""
        self.cfg = cfg
        self.models_dir = models_dir
        self.board = ProgressBoard(progress)
        self.detector = Detector(cfg.detect, models_dir, cfg.device)
        self.aligner = Aligner(cfg.align)
        self.enhancer = None if cfg.enhance.policy == "none" else Enhancer(cfg.enhance, cfg.device, generator)
        self.annotator = Annotator(cfg.output)
        self.publishing = Shared()  # live feeds' report refreshes: one at a time, one embedder for all
        self.detect_turns = Turns()  # live feeds use the detector in turn
        self._detector_sha = sha256(self.detector.path)
        self.signer = signer_from_config(cfg.provenance)  # fails early on a bad certificate
        self.catalog = open_catalog(cfg, models_dir) if cfg.catalog.url else None  # fails early too
        self.network = Network(cfg.events)  # last: nothing after it can fail and leave its threads behind

    def info(self, inputs: list[str]) -> dict:
        """What ran on what, for the manifest and every tile's provenance record."""
        path = self.detector.path
        return {
            "tool": f"enhance {__version__}",
            "inputs": inputs,
            "settings": self.cfg.to_dict(),
            "models": {path.name: {"path": str(path), "sha256": self._detector_sha,
                                   "providers": self.detector.choice.names}},
            "generator": self.enhancer.info if self.enhancer else None,
            "host": {"python": platform.python_version(), "machine": platform.machine()},
        }

    def close(self) -> None:
        self.board.close()
        if self.enhancer is not None:
            self.enhancer.close()
        self.network.close()
        if self.catalog is not None:
            self.catalog.close()
