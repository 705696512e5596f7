"""Small helpers the event sinks share: `${VAR}` from the environment, scrubbing credentials out of
anything shown, JSON that numpy values cannot break, and the time and tile-path forms events use."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, EnhanceError

# ---------------------------------------------------------------------------------------------- helpers

# C0 and C1 controls, DEL and the Unicode line/paragraph separators: what can end, split or rewrite a line
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean(text: str) -> str:
    """`text` safe to put in one line of a log, a progress line, a report or an event: each control character
    is written as its escape (`\\n`, `\\x1b`), so a name with a newline cannot split or forge a line."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# a value that is only `${VAR}` placeholders (after an optional auth scheme such as "Bearer "): no secret in it
_ONLY_PLACEHOLDERS = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]* )?(?:\$\{[A-Za-z_][A-Za-z0-9_]*\})+")


def expand_env(text: str, what: str = "a setting",
               error: type[EnhanceError] = ConfigError) -> tuple[str, list[str]]:
    """Fill `${VAR}` placeholders from the environment; returns the text and the values used.

    The values are secrets by assumption (that is why they live in the environment): callers scrub them
    from everything they show. A missing variable is an `error` (a `ConfigError` for a setting, an
    `InputError` for an input) naming the variable, never a value.
    """
    values: list[str] = []

    def fill(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise error(f"environment variable {m.group(1)} is not set (used in {what})")
        values.append(value)
        return value

    return _ENV_VAR.sub(fill, text), values


class Secrets:
    """Strings that must never be shown: `scrub(text)` replaces each one (3+ characters) with ***.

    Shorter strings are not scrubbed: replacing every "a" in a log line would hide more than it protects,
    and a one- or two-character password is not a secret worth the name.
    """

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self._values: list[str] = []
        self.add(*values)

    def add(self, *values: str | None) -> None:
        found = {v for v in values if v and len(v) >= 3} | set(self._values)
        self._values = sorted(found, key=len, reverse=True)  # longest first: a secret inside another

    def scrub(self, text: str) -> str:
        for s in self._values:
            text = text.replace(s, "***")
        return text

    def __bool__(self) -> bool:
        return bool(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __repr__(self) -> str:
        return f"Secrets({len(self._values)} hidden)"


def _jsonable(o: Any) -> Any:
    """numpy scalars and arrays, paths and sets in an event must not stop it from being sent."""
    item = getattr(o, "item", None)
    if callable(item) and getattr(o, "ndim", 1) == 0:
        return _finite(item())
    tolist = getattr(o, "tolist", None)
    if callable(tolist):
        return _finite(tolist())
    if isinstance(o, PurePath):
        return o.as_posix()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def json_dumps(obj: Any) -> str:
    """Compact JSON as the sinks send it: UTF-8 text, numpy values as numbers, NaN as null."""
    return json.dumps(_finite(obj), default=_jsonable, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _finite(obj: Any) -> Any:
    """NaN/inf are not JSON: strict consumers (JavaScript's JSON.parse) reject the whole message."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def iso_utc(at: float) -> str:
    """`EventLog`'s "at" form, and an observation's wall-clock time: ISO 8601, UTC, milliseconds."""
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")


def _parse_at(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    return None


def _relative_tile(path: str | PurePath | None) -> str | None:
    """A tile path as sent: POSIX, relative to the run folder (an absolute path would leak the host's layout)."""
    if path is None:
        return None
    p = path if isinstance(path, PurePath) else PurePosixPath(str(path).replace("\\", "/"))
    if p.is_absolute() or PureWindowsPath(str(path)).is_absolute() or ".." in p.parts:
        raise ValueError(f"best_tile must be relative to the run folder, got {str(path)!r}")
    return p.as_posix()




def shown_url(url: str, keep_path: bool = True) -> str:
    """A URL fit for settings saved in manifests and tiles: a written password becomes ***, a `${VAR}`
    placeholder stays as written (its value is in the environment, never here). `keep_path=False` also
    hides path and query (webhook services put their token there) as "/…"."""
    text = str(url)
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return "***"
    if not parts.scheme or not parts.netloc:  # a file name, or empty
        return text
    user, at, host = parts.netloc.rpartition("@")
    if at:
        name, colon, password = user.partition(":")
        if colon and not _ONLY_PLACEHOLDERS.fullmatch(password):
            password = "***"
        user = name + colon + password + "@"
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    if not keep_path and rest.strip("/"):
        rest = "/…"
    return f"{parts.scheme}://{user}{host}{rest}"


def shown_headers(headers: dict[str, str]) -> dict[str, str]:
    """Header values fit for saved settings: only `${VAR}` placeholders (e.g. "Bearer ${TOKEN}") are kept."""
    return {k: v if _ONLY_PLACEHOLDERS.fullmatch(str(v)) else "***" for k, v in headers.items()}
