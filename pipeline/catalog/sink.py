"""A running run's tracks into the catalogue as they start and finish (`catalog.url`, `process --catalog`).

`Catalog` is built once per process with the stages (one engine, one embedder); each source's session gets a
`TrackSink`, which writes in a helper thread at a lower CPU priority, so frames neither wait for the database
nor share the CPU with the embedding of finished tracks' crops. A track that starts is an `open` row; a
finished track, read back from the track.json the run has just written, fills that row in. The helper
writes whatever has queued since its last write as one batch, one transaction (`ingest.Writer.write_batch`,
at most BATCH tracks): when the database keeps up every track goes in on its own at once, and when it falls
behind the commits are shared instead of piling up. A kill leaves each track whole, open or absent, never
half written. The queue never drops: `close` waits for it. A catalogue that cannot be written to is logged
and the run goes on — its folder holds everything, and `enhance-faces catalog add` brings the rest in later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from pathlib import Path

from ..core.config import Config
from .db import engine, shown
from .embed import FaceEmbedder
from .folders import people_of
from .ingest import Finished, Opened, RunRef, Writer

log = logging.getLogger(__name__)

BATCH = 64  # most tracks written in one transaction
NICE = 10  # the writer thread's CPU priority: embedding and writing take what the frames leave


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
        self._queue: queue.Queue[int | Opened | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name=f"catalog-{source}", daemon=True)
        self._thread.start()

    def opened(self, track_id: int, first_time: float, at: str | None = None) -> None:
        """Queue a track that has just started (an `open` row until it ends)."""
        self._queue.put(Opened(track_id, first_time, at))

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
        with contextlib.suppress(OSError, AttributeError):  # Linux: this thread alone yields to the frames
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        done = False
        while not done:
            batch = [self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            done = batch[-1] is None
            if self.run is None:
                continue
            items = [it for x in batch if x is not None and (it := self._item(x)) is not None]
            if items:
                self._attempt(self.writer.write_batch, self.run, items)

    def _item(self, queued: int | Opened) -> Finished | Opened | None:
        if isinstance(queued, Opened):
            return queued
        return self._attempt(self.writer.finished, self.out / "tracks" / str(queued))

    def _attempt(self, step, *args):
        try:
            return step(*args)
        except Exception as e:  # the database, a file: the run goes on, `catalog add` can catch up
            self.failed += 1
            log.warning("catalog %s: %s failed: %s", self.where, getattr(step, "__name__", "write"),
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None
