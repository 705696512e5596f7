"""Camera URLs and their credentials: what may be shown, what is sent, and the FFmpeg options for a stream.

Credentials never appear in names, messages or events: `redact` hides `user:pass@`, `scrub` removes every
secret (a password, a `${VAR}` value) from an error text that FFmpeg wrote with the full URL in it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...core.config import SourceConfig

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "srt", "udp", "tcp")
_CREDENTIALS = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@")  # up to the last @ of the authority


def is_live(spec: str) -> bool:
    """A camera (network stream or webcam) rather than a file or folder."""
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""
    return scheme in NETWORK_SCHEMES or re.fullmatch(r"/dev/video\d+", spec) is not None


def redact(uri: str) -> str:
    """Hide `user:pass@` in a URL so it can be logged, shown and written to manifests."""
    return _CREDENTIALS.sub(r"\1***@", str(uri))


def userinfo(uri: str) -> list[str]:
    """The user name and password written in a URL (to scrub them from error text)."""
    m = _CREDENTIALS.match(uri)
    if not m:
        return []
    info = uri[len(m.group(1)) : m.end() - 1]
    user, _, password = info.partition(":")
    return [info, user, password]


def scrub(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret (3+ characters; longest first) by *** in a message."""
    for s in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def reason(e: BaseException, *secrets: str) -> str:
    """A short, credential-free reason for an FFmpeg/OS error (its str() repeats the full URL)."""
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    for s in secrets:
        if s:
            text = text.replace(s, redact(s))
    return redact(" ".join(str(text).split()))


def network_options(spec: str, cfg: SourceConfig, options: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
    """FFmpeg options for a camera URL: RTSP over `cfg.transport` (TCP by default), socket timeouts in µs.

    A `transport=udp|tcp|http` query parameter (or `options["transport"]`) overrides it for one camera and
    is removed from the URL sent to the camera.
    """
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    query = parse_qsl(parts.query, keep_blank_values=True)
    transport = next((v for k, v in query if k == "transport"), None)
    if transport is not None:
        query = [(k, v) for k, v in query if k != "transport"]
        spec = urlunsplit(parts._replace(query=urlencode(query)))
    opts: dict[str, str] = {}
    extra = dict(options or {})
    transport = extra.pop("transport", transport)
    # FFmpeg ≥ 5 (PyAV bundles ≥ 7) calls the socket I/O timeout `timeout` for rtsp, http and tcp alike;
    # the old rtsp name `stimeout` no longer exists.
    opts["timeout"] = str(int(cfg.read_timeout_s * 1_000_000))
    if scheme in ("rtsp", "rtsps"):
        opts["rtsp_transport"] = transport or cfg.transport
    if scheme in ("rtmp", "rtmps"):
        opts.pop("timeout")  # rtmp's `timeout` means "listen", which would turn us into a server
    opts.update(extra)
    return spec, opts
