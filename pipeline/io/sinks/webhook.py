"""Webhook: each event POSTed as JSON to an HTTP endpoint, off the frame loop.

Body: `pipeline.io.events.envelope`: `{"type", "camera", "event": <the events.jsonl row>}`, and for track
events Frigate's `"before"`/`"after"` snapshots with type new/update/end (docs/events.md).

An endpoint that answers 401 or 403 refuses the credentials: that is remembered (`error`) and said at the
run's end on the terminal and in the manifests (`pipeline.io.sinks.network`).

`publish` only appends to a bounded queue; one background thread sends. A connection error, a timeout,
a 5xx or a 429 is retried with exponential backoff (`backoff_s`, doubling, up to `backoff_max_s`) up to
`retries` more times, then the event is given up and counted (`failed`); any other 4xx is given up at
once (resending the same body will not fix it). When the endpoint is slow or down and the queue is full,
the oldest waiting event is dropped and counted (`dropped`): a live camera's newest events matter most.
Redirects are not followed: urllib would resend a POST as a bodiless GET, and the Authorization header to
another host.

Secrets: `${VAR}` placeholders in the URL and header values come from the environment; user:password in
the URL becomes a Basic Authorization header. Logs, exceptions and `repr` show only scheme, host and port:
the path is left out too, since many webhook services (Slack, Discord, Teams) put the token there.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ...core.errors import ConfigError
from ..events import Event, Secrets, TrackBook, envelope, expand_env, json_dumps

log = logging.getLogger(__name__)

__all__ = ["WebhookSink"]

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "x-auth-token", "cookie"})
STOP_GRACE_S = 0.1  # close(): how long past its deadline it waits for the sender to notice the stop
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})  # the endpoint may well accept it later


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx becomes an HTTPError: given up, logged


class WebhookSink:
    """POSTs every event as JSON to `url` from a background thread; `publish` never blocks.

    `headers`: extra request headers (values may hold `${VAR}`). `timeout_s`: per request. `max_queue`:
    events waiting to be sent. `retries`: further attempts after the first fails with a retryable error;
    `backoff_s` is the first wait between attempts, doubling, capped at `backoff_max_s`.

    Counters: `delivered` (2xx), `retried` (attempts after the first), `failed` (given up), `dropped`
    (queue full, or still queued when `close` ran out of time); `error`: why the endpoint refuses us
    (HTTP 401/403), else None.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout_s: float = 5.0,
        max_queue: int = 1000,
        retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        # `secrets` are scrubbed from payloads and logs: passwords and header tokens; `_hidden` (below) adds
        # the URL's ${VAR} values, path and query, for log text only
        self.secrets = Secrets()
        expanded, url_values = expand_env(url, "the webhook URL")
        try:
            parts = urlsplit(expanded.strip())
        except ValueError as e:  # e.g. "http://[::1": the message names the fault, never the URL's text
            raise ConfigError(f"webhook URL is malformed ({e})") from None
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError:
            port = None
            bad_port = True
        else:
            bad_port = False
        host = parts.hostname or ""
        self.shown = f"{scheme}://{host}{f':{port}' if port else ''}" + ("/…" if parts.path.strip("/") else "")
        if scheme not in ("http", "https") or not host or bad_port:
            shown = Secrets(url_values).scrub(self.shown)
            raise ConfigError(f"webhook URL must be http(s)://host[:port]/path, got {shown}")
        self._headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "enhance-webhook/1"}
        if parts.username is not None:  # urllib does not send URL credentials by itself
            user, pw = unquote(parts.username), unquote(parts.password or "")
            self.secrets.add(pw, parts.password)
            token = base64.b64encode(f"{user}:{pw}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
            self.secrets.add(token)
        netloc = host if ":" not in host else f"[{host}]"
        if port:
            netloc += f":{port}"
        self._url = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        header_values: list[str] = []
        for name, value in (headers or {}).items():
            value, values = expand_env(str(value), f"webhook header {name}")
            header_values += values
            if name.lower() in SECRET_HEADERS:  # "Bearer <token>": the whole value and the token alone
                self.secrets.add(value, value.split(" ", 1)[-1])
            self._headers[str(name)] = value
        # error text may quote the URL: its path and query (tokens live there) and every ${VAR} value are
        # hidden there too; not in payloads, where scrubbing an ordinary word would mangle the data
        self._hidden = Secrets([*self.secrets, *url_values, *header_values, self._url,
                                parts.path.strip("/") or None, parts.query or None])
        self.timeout_s = float(timeout_s)
        self.retries = max(0, int(retries))
        self.backoff_s = max(0.0, float(backoff_s))
        self.backoff_max_s = max(self.backoff_s, float(backoff_max_s))
        self.delivered = self.retried = self.failed = self.dropped = 0
        self.error: str | None = None
        self._max_queue = max(1, int(max_queue))
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()  # close() has given up waiting: abandon backoff sleeps
        self._closing = False
        self._sending = False
        self._book = TrackBook()
        self._last_error: str | None = None
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._thread = threading.Thread(target=self._run, name=f"webhook {self.shown}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ producer side (any thread)

    def publish(self, event: Event) -> None:
        """Queue `event` for sending; returns at once whatever the endpoint is doing."""
        body = self.secrets.scrub(json_dumps(envelope(event, self._book))).encode("utf-8")
        with self._cond:
            if self._closing:
                self.dropped += 1
                return
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(body)
            self._cond.notify_all()

    __call__ = publish

    @property
    def queued(self) -> int:
        return len(self._queue)

    def stats(self) -> dict[str, Any]:
        """For the manifest: delivered, retried, failed, dropped, queued, and `error` when there is one."""
        out: dict[str, Any] = {"delivered": self.delivered, "retried": self.retried, "failed": self.failed,
                               "dropped": self.dropped, "queued": self.queued}
        return out | ({"error": self.error} if self.error else {})

    # ------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._stop.is_set():  # close() counts what is left as dropped
                    return
                body = self._queue.popleft()
                self._sending = True
            try:
                self._send(body)
            finally:
                with self._cond:
                    self._sending = False
                    self._cond.notify_all()

    def _send(self, body: bytes) -> None:
        attempt = 0
        while True:
            retry, why = self._attempt(body)
            if why is None:
                with self._cond:
                    self.delivered += 1
                    self.error = None
                if self._last_error is not None:
                    log.info("webhook %s delivering again", self.shown)
                    self._last_error = None
                return
            if not retry or attempt >= self.retries or self._stop.is_set():
                with self._cond:
                    self.failed += 1
                if why != self._last_error:  # one line per kind of failure, not one per event
                    log.warning("webhook %s: gave up on an event after %d attempt%s: %s", self.shown, attempt + 1,
                                "s" if attempt else "", self._hidden.scrub(why))
                    self._last_error = why
                return
            delay = min(self.backoff_max_s, self.backoff_s * 2**attempt)
            attempt += 1
            with self._cond:
                self.retried += 1
            if self._stop.wait(delay):
                with self._cond:
                    self.failed += 1
                return

    def _attempt(self, body: bytes) -> tuple[bool, str | None]:
        """One POST: (retryable, None on success or the credential-free reason)."""
        request = urllib.request.Request(self._url, data=body, headers=self._headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read(65536)  # let the server finish its answer before the connection closes
            return False, None
        except urllib.error.HTTPError as e:
            e.close()
            if e.code in (401, 403):
                self.error = f"the endpoint refused the credentials (HTTP {e.code} {e.reason})"
            return e.code in RETRY_STATUS, f"HTTP {e.code} {e.reason}"
        except (urllib.error.URLError, OSError, ValueError) as e:  # refused, reset, timed out, DNS, TLS
            reason = getattr(e, "reason", None) or e
            return True, self._hidden.scrub(f"{type(e).__name__}: {reason}")

    # ------------------------------------------------------------------ shutdown

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event has been delivered or given up (True), or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._queue or self._sending) and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            return not (self._queue or self._sending)

    def close(self, timeout: float = 5.0) -> None:
        """Send what can be sent within `timeout` seconds; the rest is counted in `dropped`."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._stop.set()  # a backoff still sleeping gives up now; a request in flight has its own timeout
            self.dropped += len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(STOP_GRACE_S)  # let a woken backoff count its event before we return

    def __enter__(self) -> WebhookSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"WebhookSink({self.shown})"
