"""Events to the outside: one MQTT connection and one webhook per process, shared by every source.

Each source's session writes its own `events.jsonl` and hands every event to this bus too. The MQTT and
webhook sinks only queue (`nonblocking`), so the bus calls them in the frame loop's thread, catching
anything they raise: a broker or endpoint that is down, slow or goes away costs the frame loop nothing.
It is closed once, when the run ends, within `CLOSE_S`; what could not be sent by then is counted, and
`record` then writes the final counters into every manifest of the run (until then each held the counters
as they stood when its source ended, when events still queued for a broker that had gone were not yet lost).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...core.config import EventsConfig
from ..events import Event, EventBus
from .manifest import write_json

log = logging.getLogger(__name__)

CLOSE_S = 2.0  # the run's end waits at most this long for queued events to reach the broker and endpoint


class Network:
    """The process-wide event bus holding the MQTT and webhook sinks that `cfg` asks for (maybe none)."""

    def __init__(self, cfg: EventsConfig) -> None:
        self.bus = EventBus()
        self.sinks: dict[str, Any] = {}
        self._closed = False
        try:
            if cfg.mqtt_url:
                from .mqtt import MqttSink

                self._add("mqtt", MqttSink(cfg.mqtt_url, cfg.mqtt_prefix, cfg.mqtt_client_id or None, cfg.mqtt_qos,
                                           max_queue=cfg.queue, tls_ca=cfg.mqtt_tls_ca or None))
            if cfg.webhook_url:
                from .webhook import WebhookSink

                self._add("webhook", WebhookSink(cfg.webhook_url, cfg.webhook_headers, timeout_s=cfg.webhook_timeout_s,
                                                 max_queue=cfg.queue, retries=cfg.webhook_retries,
                                                 backoff_s=cfg.webhook_backoff_s))
        except BaseException:  # a bad webhook setting must not leave the MQTT connection's threads behind
            self.close(0.0)
            raise

    def _add(self, name: str, sink: Any) -> None:
        self.sinks[name] = sink
        self.bus.add(sink, name=name, inline=True)

    def emit(self, event: Event) -> None:
        """Hand `event` to every sink; returns at once and never raises."""
        if self.sinks:
            self.bus.emit(event)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per sink, its own counters as they stand: MQTT sent/dropped/queued/connected, webhook
        delivered/retried/failed/dropped/queued. `dropped`: never sent (queue full, or left at close)."""
        out: dict[str, dict[str, Any]] = {}
        for name, sink in self.sinks.items():
            keys = ("sent", "dropped") if name == "mqtt" else ("delivered", "retried", "failed", "dropped")
            out[name] = {k: getattr(sink, k) for k in keys} | {"queued": sink.queued}
            if name == "mqtt":
                out[name]["connected"] = sink.connected
        return out

    def close(self, timeout: float = CLOSE_S) -> None:
        """Send what can be sent within `timeout` seconds, then say what never arrived (one line per sink).
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.bus.close(timeout)
        for name, counts in self.stats().items():
            lost = counts["dropped"] + counts.get("failed", 0)
            if lost:
                log.warning("events: %d not delivered to %s %s (down or too slow; see the manifests' stats.events)",
                            lost, name, self.sinks[name].shown)

    def record(self, manifests: Iterable[Path]) -> None:
        """After `close`: each manifest's `stats.events` gets every sink's final counters (`dropped` now
        includes what was still queued when the run ended). A manifest that cannot be rewritten keeps
        its earlier counters (one warning line); the run's outcome does not change."""
        if not self.sinks:
            return
        final = self.stats()
        for path in manifests:
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                doc.setdefault("stats", {}).setdefault("events", {}).update(final)
                write_json(path, doc)
            except (OSError, ValueError) as e:
                log.warning("%s: final event counters not written (%s)", path, e)
