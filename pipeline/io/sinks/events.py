"""A source's events: appended to its `events.jsonl`, and handed to MQTT and the webhook (`Network`).

One typed event (`pipeline.io.events`) per happening — track start/update/end, run start/end, disconnects,
reconnects, drops — so the file and the network sinks never disagree about what a field means.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ...core.errors import write_error
from ..events import Event, from_dict
from .network import Network

log = logging.getLogger(__name__)


class EventLog:
    """One line per event, flushed at once, so a crash loses nothing already logged."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise write_error(self.path, e) from None
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, event: dict) -> None:
        row = {"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **event}
        line = json.dumps(row, default=str)
        with self._lock:
            if self._file.closed:
                return
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except OSError as e:
                raise write_error(self.path, e) from None
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                try:
                    self._file.close()
                except OSError:  # the buffer could not be flushed (disk full): what was flushed stays
                    pass


class SourceEvents:
    """One source's events: each written to `events.jsonl` first (a write error stops the run, as any
    output's does), then given to the process-wide `network` bus, which never raises or waits.

    Also the source's `on_event`: the camera's own dicts (disconnect, reconnect, dropped) become events.
    """

    def __init__(self, path: Path, source: str, network: Network | None = None) -> None:
        self.log = EventLog(path)
        self.source, self.network = source, network
        self.invalid = 0  # dicts from a source that were not a valid event (written to the file as they came)

    def __call__(self, event: Event | Mapping[str, Any]) -> None:
        if isinstance(event, Event):
            self.log(event.to_dict())
        else:
            row = {"source": self.source, **event}
            try:
                event = from_dict(row)
            except (ValueError, TypeError) as e:
                self.invalid += 1
                if self.invalid == 1:
                    log.warning("%s: an event the network sinks cannot read (%s); written to events.jsonl only",
                                self.source, e)
                self.log(row)
                return
            self.log(event.to_dict())
        if self.network is not None:
            self.network.emit(event)

    def stats(self) -> dict[str, Any]:
        """For the manifest: events written to the file, and each network sink's counters as they stand."""
        out: dict[str, Any] = {"jsonl": self.log.count}
        if self.invalid:
            out["invalid"] = self.invalid
        if self.network is not None:
            out |= self.network.stats()
        return out

    def close(self) -> None:
        self.log.close()
