"""A running run's tracks into the catalogue as they finish (`catalog.url`, `process --catalog`).

`Catalog` is built once per process with the stages (one engine, one embedder); each source's session gets a
`TrackSink`, which writes in a helper thread so frames never wait for the database: each finished track is
one transaction (`ingest.Writer.track`), read back from the track.json the run has just written. Its queue
never drops: `close` waits for it. A catalogue that cannot be written to is logged and the run goes on —
its folder holds everything, and `enhance-faces catalog add` brings the rest in later.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from ..core.config import Config
from .db import engine, shown
from .embed import FaceEmbedder
from .folders import people_of
from .ingest import RunRef, Writer

log = logging.getLogger(__name__)


class Catalog:
    """The catalogue a run writes into, opened (and migrated) when the stages are built."""

    def __init__(self, cfg: Config, models_dir: str | Path | None = None) -> None:
        url = None if cfg.catalog.url == "default" else cfg.catalog.url
        self.shown = shown(url)
        self.eng = engine(url)
        self.writer = Writer(self.eng, FaceEmbedder(cfg, models_dir) if cfg.catalog.embed else None)
        self._final: dict[Path, Path] = {}
        log.info("catalog: %s", self.shown)

    def publish_as(self, out: Path, final: Path) -> None:
        """A run written to `out` is moved to `final` when it completes (`process --engine ray`): the
        catalogue records `final` as its folder, the one its files will be served from."""
        self._final[Path(out)] = Path(final)

    def sink(self, out: Path, info: dict, started: str, source: str, live: bool) -> TrackSink:
        return TrackSink(self.writer, out, {**info, "started": started, "status": "running"}, source, live,
                         self.shown, self._final.get(Path(out)))

    def close(self) -> None:
        self.eng.dispose()


class TrackSink:
    """One source's finished tracks, written by a helper thread in the order they end."""

    def __init__(self, writer: Writer, out: Path, manifest: dict, source: str, live: bool, where: str,
                 folder: Path | None = None) -> None:
        """`out`: where the run writes its files now; `folder`: where they will be served from (default `out`)."""
        self.writer, self.out, self.where = writer, Path(out), where
        self.failed = 0
        self.run: RunRef | None = self._attempt(writer.run, folder or self.out, manifest, source, live)
        self._manifest = manifest
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name=f"catalog-{source}", daemon=True)
        self._thread.start()

    def add(self, track_id: int) -> None:
        """Queue the track whose tracks/<id>/track.json was just written."""
        self._queue.put(track_id)

    def close(self, status: str) -> None:
        """Write what is queued, then the run's people grouping (its report is written) and final status."""
        self._queue.put(None)
        self._thread.join()
        if self.run is not None:
            self._attempt(self.writer.set_people, self.run, people_of(self.out))
            self._attempt(self.writer.set_status, self.run, status)

    def _work(self) -> None:
        while (track_id := self._queue.get()) is not None:
            if self.run is None:
                continue
            self._attempt(self.writer.track, self.run, self.out / "tracks" / str(track_id))

    def _attempt(self, step, *args):
        try:
            return step(*args)
        except Exception as e:  # the database, a file: the run goes on, `catalog add` can catch up
            self.failed += 1
            log.warning("catalog %s: %s failed: %s", self.where, getattr(step, "__name__", "write"),
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None
