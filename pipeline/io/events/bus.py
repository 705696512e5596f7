"""One source's events to every sink: its events.jsonl, and the process-wide MQTT and webhook sinks."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from .schema import Event

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    """Something that takes events.

    `name` keys its counters in `EventBus.stats()`; `publish(event)` takes one event; `stats()` is what the
    manifest records about it; `close(timeout)` delivers what it holds and lets go, within `timeout`.
    A sink whose failure must stop the run (the events.jsonl writer: a write error, like any output's)
    sets `essential = True`; the bus lets its exceptions through. Every other sink only queues (MQTT,
    webhook), so the bus calls it in the emitting thread and a failure of its own is counted, not raised.
    """

    name: str

    def publish(self, event: Event) -> None: ...

    def stats(self) -> Any: ...

    def close(self, timeout: float = ...) -> None: ...


class EventBus:
    """Delivers each typed event to every sink, in the order they were added.

    `owned` sinks are closed with the bus; shared ones (a process-wide MQTT connection fed by several
    sources' buses) are added with `owned=False` and closed by whoever made them.
    """

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self._sinks: list[tuple[Sink, bool]] = []
        self._errors: dict[str, int] = {}
        self._closed = False
        for s in sinks:
            self.add(s)

    def add(self, sink: Sink, *, owned: bool = True) -> None:
        if not isinstance(sink, Sink):
            raise TypeError(f"not an event sink: {sink!r}")
        self._sinks.append((sink, owned))

    def emit(self, event: Event) -> None:
        """Send `event` to every sink; only an essential sink's exception reaches the caller."""
        if not isinstance(event, Event):
            raise TypeError(f"not an event: {event!r}")
        if self._closed:
            return
        for sink, _ in self._sinks:
            if getattr(sink, "essential", False):
                sink.publish(event)
                continue
            try:
                sink.publish(event)
            except Exception as e:  # a sink's failure is its own: count it, say it once, carry on
                n = self._errors[sink.name] = self._errors.get(sink.name, 0) + 1
                if n == 1:
                    log.warning("event sink %s failed (%s: %s); further failures are counted, not logged",
                                sink.name, type(e).__name__, e)

    __call__ = emit

    def stats(self) -> dict[str, Any]:
        """Per sink, its own `stats()`, plus `errors` where its `publish` raised."""
        out: dict[str, Any] = {}
        for sink, _ in self._sinks:
            s = sink.stats()
            if self._errors.get(sink.name):
                s = {**s, "errors": self._errors[sink.name]} if isinstance(s, dict) else {
                    "count": s, "errors": self._errors[sink.name]}
            out[sink.name] = s
        return out

    def close(self, timeout: float = 5.0) -> None:
        """Close the owned sinks, all within `timeout` seconds; nothing is delivered afterwards. Idempotent."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + max(0.0, timeout)
        for sink, owned in self._sinks:
            if owned:
                sink.close(max(0.0, deadline - time.monotonic()))
