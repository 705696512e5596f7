"""The page's security: who may ask, what headers every answer carries, which files may be served.

- Bound to a loopback address nobody else can reach it; bound to any other address a token is required
  (`--token` or $ENHANCE_SERVE_TOKEN), and refused without one before the server starts. A browser presents
  it once as `?token=…` and keeps it in an HttpOnly, SameSite=Strict cookie; tools send
  `Authorization: Bearer …`. Compared in constant time.
- Every answer: a Content-Security-Policy with no script and nothing from elsewhere, no framing, no sniffing,
  no referrer.
- A file is served only from the folder of the run that lists it (the catalogue's roots): its path, resolved
  with symbolic links followed, must stay inside that folder — `../` and absolute paths are refused.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from ...core.errors import ConfigError

CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'none'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
COOKIE = "enhance_token"


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def required_token(host: str, token: str | None) -> str | None:
    """The token the server must ask for: None on a loopback address without one; ConfigError when bound
    elsewhere without one."""
    if token:
        if len(token) < 16:
            raise ConfigError("serve: the token must be at least 16 characters")
        return token
    if is_local(host):
        return None
    raise ConfigError(f"serve: bound to {host}, which others can reach: give a token (--token or "
                      "$ENHANCE_SERVE_TOKEN), or bind to 127.0.0.1")


class Guard(BaseHTTPMiddleware):
    """The security headers on every answer; with a token, nothing without it."""

    def __init__(self, app, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    def _presented(self, request: Request) -> str:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.query_params.get("token") or request.cookies.get(COOKIE) or ""

    async def dispatch(self, request: Request, call_next) -> Response:
        if self.token is not None:
            given = self._presented(request)
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                response: Response = PlainTextResponse("a token is required (?token=… or Authorization: Bearer …)",
                                                       status_code=401)
            elif "token" in request.query_params:  # once: into a cookie, and out of the address bar
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                url = request.url.replace_query_params(**dict(rest)) if rest else request.url.remove_query_params("token")
                response = RedirectResponse(str(url.path + (f"?{url.query}" if url.query else "")), status_code=303)
                response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
            else:
                response = await call_next(request)
        else:
            response = await call_next(request)
        for k, v in HEADERS.items():
            response.headers[k] = v
        return response


def inside(root: str | Path, rel: str) -> Path | None:
    """`root/rel` when it is a file inside `root` (links resolved), else None."""
    if not rel or "\0" in rel or Path(rel).is_absolute():
        return None
    base = Path(root).resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path
