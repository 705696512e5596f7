"""Fan-out: one event to several sinks, never letting a failing or slow sink reach the caller."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from .schema import Event, from_dict

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- fan-out


@runtime_checkable
class Sink(Protocol):
    """Something that takes events: `publish(event)` and, optionally, `close(timeout)`.

    A sink whose `publish` never blocks (it only queues) sets `nonblocking = True`; `EventBus` then calls
    it in the emitting thread instead of giving it a queue and a thread of its own.
    """

    def publish(self, event: Event) -> None: ...


class DictSink:
    """Adapts a dict consumer (such as `sinks.events.EventLog`) to `Sink`: it receives `event.to_dict()`."""

    def __init__(self, consumer: Callable[[dict], None]) -> None:
        self.consumer = consumer

    def publish(self, event: Event) -> None:
        self.consumer(event.to_dict())

    def close(self, timeout: float | None = None) -> None:
        close = getattr(self.consumer, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"DictSink({type(self.consumer).__name__})"


class _Lane:
    """One sink behind the bus: called inline, or fed through its own bounded queue and thread."""

    def __init__(self, sink: Any, name: str, inline: bool, max_queue: int) -> None:
        self.sink, self.name, self.inline = sink, name, inline
        self._deliver: Callable[[Event], None] = sink.publish if hasattr(sink, "publish") else sink
        self.delivered = self.dropped = self.errors = 0
        self._queue: deque[Event] = deque()
        self._max = max(1, int(max_queue))
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        if not inline:
            self._thread = threading.Thread(target=self._run, name=f"events to {name}", daemon=True)
            self._thread.start()

    def put(self, event: Event) -> None:
        if self.inline:
            self._call(event)
            return
        with self._cond:
            if self._closing:
                self.dropped += 1
                return
            if len(self._queue) >= self._max:  # a slow sink loses its oldest events, never the caller's time
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._cond.notify()

    def _call(self, event: Event) -> None:
        try:
            self._deliver(event)
        except Exception as e:  # a sink's failure is its own: count it, say it once, carry on
            with self._cond:
                self.errors += 1
                first = self.errors == 1
            if first:
                log.warning("event sink %s failed (%s: %s); further failures are counted, not logged",
                            self.name, type(e).__name__, e)
        else:
            with self._cond:
                self.delivered += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                event = self._queue.popleft()
            self._call(event)

    def drain(self, deadline: float) -> None:
        """Stop taking events and wait (until `deadline`, monotonic) for the queue to empty."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            with self._cond:  # what could not be delivered in time is lost: count it
                self.dropped += len(self._queue)
                self._queue.clear()

    def close(self, deadline: float) -> None:
        close = getattr(self.sink, "close", None)
        if not callable(close):
            return
        try:
            close(timeout=max(0.0, deadline - time.monotonic()))
        except TypeError:  # a close() without a timeout
            close()

    def stats(self) -> dict[str, int]:
        return {"delivered": self.delivered, "dropped": self.dropped, "errors": self.errors,
                "queued": len(self._queue)}


class EventBus:
    """Delivers each event to every sink; a sink's exception or slowness never reaches the caller.

    The frame loop calls `emit` and moves on. A sink that declares `nonblocking = True` (its `publish`
    only queues, as the MQTT and webhook sinks do) or is added with `inline=True` (the events.jsonl
    writer: a local append, wanted on disk before the frame loop continues) is called in the caller's
    thread with its exceptions caught. Any other sink gets a thread and a queue of `max_queue` events;
    when it falls that far behind its oldest events are dropped and counted (`stats()`).

    `emit` also takes today's dicts (`{"source", "event", …}`), so `source.on_event = bus.for_source(name)`
    works unchanged. `close(timeout)` drains the queues and closes the sinks within one shared deadline.
    """

    def __init__(self, sinks: Iterable[Any] = ()) -> None:
        self._lanes: list[_Lane] = []
        self._lock = threading.Lock()
        self._closed = False
        self.invalid = 0  # dicts that were not a valid event
        for s in sinks:
            self.add(s)

    def add(self, sink: Any, *, name: str | None = None, inline: bool | None = None, max_queue: int = 1000) -> None:
        """Add a `Sink` (or any callable taking an `Event`). `inline=None`: inline if it says it never blocks."""
        if not (hasattr(sink, "publish") or callable(sink)):
            raise TypeError(f"not an event sink: {sink!r}")
        if inline is None:
            inline = bool(getattr(sink, "nonblocking", False))
        lane = _Lane(sink, name or type(sink).__name__, inline, max_queue)
        with self._lock:
            if self._closed:
                raise RuntimeError("EventBus is closed")
            self._lanes.append(lane)

    def emit(self, event: Event | Mapping[str, Any]) -> Event | None:
        """Send one event (or its dict form) to every sink; returns the event, None if it was invalid."""
        if not isinstance(event, Event):
            try:
                event = from_dict(event)
            except (ValueError, TypeError) as e:
                self.invalid += 1
                if self.invalid == 1:
                    log.warning("ignoring an invalid event (%s); further ones are counted, not logged", e)
                return None
        with self._lock:
            if self._closed:
                return event
            lanes = list(self._lanes)
        for lane in lanes:
            lane.put(event)
        return event

    __call__ = emit

    def for_source(self, source: str) -> Callable[[dict], None]:
        """A `Source.on_event` callback: its dicts, tagged with the camera's name, onto the bus."""
        return lambda e: self.emit({"source": source, **e})

    def stats(self) -> dict[str, dict[str, int]]:
        """Per sink: delivered, dropped (queue full or left at close), errors (exceptions), queued."""
        with self._lock:
            lanes = list(self._lanes)
        out: dict[str, dict[str, int]] = {}
        for lane in lanes:
            name, n = lane.name, 2
            while name in out:
                name, n = f"{lane.name}#{n}", n + 1
            out[name] = lane.stats()
        return out

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued and close every sink, all within `timeout` seconds. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            lanes = list(self._lanes)
        deadline = time.monotonic() + max(0.0, timeout)
        for lane in lanes:
            lane.drain(deadline)
        for lane in lanes:
            try:
                lane.close(deadline)
            except Exception as e:
                log.warning("closing event sink %s failed (%s: %s)", lane.name, type(e).__name__, e)

    def __enter__(self) -> EventBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

