"""Events to the outside: one MQTT connection and one webhook per process, shared by every source.

Each source's `EventBus` (`sinks.events.source_events`) writes its own `events.jsonl` and hands every event
to these sinks too. They only queue, so the bus calls them in the frame loop's thread: a broker or endpoint
that is down, slow or goes away costs the frame loop nothing. They are closed once, when the run ends,
within `CLOSE_S`; what could not be sent by then is counted, and `record` then writes the final counters
into every manifest of the run (until then each held the counters as they stood when its source ended).

A sink that knows why nothing arrives (the broker refused the credentials, the endpoint answered 401)
says so in its `error`: on the terminal at close, and in the manifests' `stats.events.<sink>.error`. The
run's exit status does not change (docs/events.md): the video's outputs are complete either way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...core.config import EventsConfig
from .manifest import write_json

log = logging.getLogger(__name__)

CLOSE_S = 2.0  # the run's end waits at most this long for queued events to reach the broker and endpoint


class Network:
    """The process-wide MQTT and webhook sinks that `cfg` asks for (maybe none)."""

    def __init__(self, cfg: EventsConfig) -> None:
        self.sinks: list[Any] = []
        self._closed = False
        try:
            if cfg.mqtt_url:
                from .mqtt import MqttSink

                self.sinks.append(MqttSink(cfg.mqtt_url, cfg.mqtt_prefix, cfg.mqtt_client_id or None, cfg.mqtt_qos,
                                           max_queue=cfg.queue, tls_ca=cfg.mqtt_tls_ca or None))
            if cfg.webhook_url:
                from .webhook import WebhookSink

                self.sinks.append(WebhookSink(cfg.webhook_url, cfg.webhook_headers, timeout_s=cfg.webhook_timeout_s,
                                              max_queue=cfg.queue, retries=cfg.webhook_retries,
                                              backoff_s=cfg.webhook_backoff_s))
        except BaseException:  # a bad webhook setting must not leave the MQTT connection's threads behind
            self.close(0.0)
            raise

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per sink, its own counters as they stand (see `MqttSink.stats`, `WebhookSink.stats`)."""
        return {sink.name: sink.stats() for sink in self.sinks}

    def close(self, timeout: float = CLOSE_S) -> None:
        """Send what can be sent within `timeout` seconds, then say what never arrived, and why when a
        sink knows (one line per sink). Idempotent."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + max(0.0, timeout)
        for sink in self.sinks:
            sink.close(max(0.0, deadline - time.monotonic()))
        for sink in self.sinks:
            counts = sink.stats()
            lost = counts["dropped"] + counts.get("failed", 0)
            if counts.get("error"):
                log.error("events: %s %s: %s; %d event%s not delivered (see the manifests' stats.events)",
                          sink.name, sink.shown, counts["error"], lost, "" if lost == 1 else "s")
            elif lost:
                log.warning("events: %d not delivered to %s %s (down or too slow; see the manifests' stats.events)",
                            lost, sink.name, sink.shown)

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
