"""A real local HTTP endpoint for webhook tests: `http.server` in a thread that records POSTs, answers
with queued status codes (then 200) and can hang until released."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")  # urllib obeys them


class Endpoint:
    """A local HTTP endpoint: records POSTs; answers with the queued status codes (then 200); can hang."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.codes: deque[int] = deque()
        self.attempts = 0
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.attempts += 1
                endpoint.entered.set()
                endpoint.release.wait(30)
                code = endpoint.codes.popleft() if endpoint.codes else 200
                if code == 200:
                    endpoint.bodies.append(json.loads(body))
                    endpoint.headers.append(dict(self.headers))
                    endpoint.paths.append(self.path)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
