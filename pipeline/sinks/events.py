"""An append-only JSON-lines log of what happened to a camera: track start/end, reconnects, drops."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

from ..errors import write_error


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
