"""A source's events: one `EventBus` with its `events.jsonl` and the run's MQTT and webhook sinks.

One typed event (`pipeline.io.events`) per happening — track start/update/end, run start/end, disconnects,
reconnects, drops — so the file and the network sinks never disagree about what a field means.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from ...core.errors import write_error
from ..events import Event, EventBus
from .network import Network


class EventLog:
    """events.jsonl: one line per event (`Event.row()`), flushed at once, so a crash loses nothing logged.

    Essential: a write error (disk full) stops the run, as any output's does.
    """

    name = "jsonl"
    essential = True

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise write_error(self.path, e) from None
        self._lock = threading.Lock()
        self.count = 0

    def publish(self, event: Event) -> None:
        line = json.dumps(event.row(), default=str)
        with self._lock:
            if self._file.closed:
                return
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except OSError as e:
                raise write_error(self.path, e) from None
            self.count += 1

    def stats(self) -> int:
        """Events written."""
        return self.count

    def close(self, timeout: float | None = None) -> None:
        with self._lock:
            if not self._file.closed:
                try:
                    self._file.close()
                except OSError:  # the buffer could not be flushed (disk full): what was flushed stays
                    pass


def source_events(path: Path, network: Network | None = None) -> EventBus:
    """The bus a source's session and its `LiveSource` (`on_event`) emit to: `path` (events.jsonl) first,
    then the process-wide network sinks (shared, closed by the run, not by this bus)."""
    bus = EventBus([EventLog(path)])
    for sink in network.sinks if network is not None else ():
        bus.add(sink, owned=False)
    return bus
