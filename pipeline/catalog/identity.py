"""A run's identity: what was processed (input path, size, mtime), how (settings hash), with which weights
(the generator's sha256) and by which version. Read from the manifest's `identity` when the run wrote one,
else computed here from the manifest's own fields, the same way for a live run's sink and for `catalog add`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from ..core.text import shown_url

IGNORED_SETTINGS = ("catalog",)  # where results go, not how they were made


@dataclass(frozen=True)
class RunIdentity:
    input: str
    size: int
    mtime: float
    settings_sha256: str
    weights_sha256: str
    version: str

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def settings_sha256(settings: dict) -> str:
    kept = {k: v for k, v in (settings or {}).items() if k not in IGNORED_SETTINGS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def _stat(path: str) -> tuple[int, float]:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return -1, 0.0
    return (int(st.st_size), round(st.st_mtime, 3)) if Path(path).is_file() else (-1, 0.0)


def identity(manifest: dict) -> RunIdentity:
    """The run identity a manifest (or a session's run info, the same fields) describes: the one the run
    recorded (`identity`, see pipeline/run/batch.py), else what the manifest's own fields say."""
    inputs = manifest.get("inputs") or [""]
    given = manifest.get("identity") if isinstance(manifest.get("identity"), dict) else {}
    recorded = given.get("input") if isinstance(given.get("input"), dict) else {}
    raw = str(recorded.get("path") or recorded.get("uri") or inputs[0])
    size, mtime = _stat(raw)
    if "size" in recorded:
        size = int(recorded["size"])
    if "mtime_ns" in recorded:
        mtime = round(int(recorded["mtime_ns"]) / 1e9, 3)
    gen = manifest.get("generator") if isinstance(manifest.get("generator"), dict) else {}
    weights = given.get("weights") if isinstance(given.get("weights"), dict) else {}
    settings = given.get("settings") if isinstance(given.get("settings"), dict) else manifest.get("settings") or {}
    tool = str(manifest.get("tool") or "")
    return RunIdentity(
        input=shown_url(raw),
        size=size,
        mtime=mtime,
        settings_sha256=settings_sha256(settings),
        weights_sha256=str(weights.get("generator") or gen.get("sha256") or ""),
        version=str(given.get("version") or tool.rpartition(" ")[2] or "unknown"),
    )


def epoch(iso: str | None, default: float = 0.0) -> float:
    """UNIX seconds of an ISO 8601 time (a naive one is UTC); `default` when there is none or it is bad."""
    if not iso:
        return default
    try:
        t = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return default
    if t.tzinfo is None:
        from datetime import timezone

        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()
