"""Diagnostics through the standard `logging` module: one handler on stderr, as text for people or as one
JSON object a line for services (`--log-format json`).

Every record passes through `clean`, so a file or camera name with a newline or another control character
cannot split a line or forge one. A record about one camera or recording carries it as `extra={"source":
name}`; the JSON line has it as `source`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal, TextIO

from .text import clean

LOGGER = "pipeline"  # every module's logger is a child: logging.getLogger(__name__)
LEVELS = ("debug", "info", "warning", "error")
Format = Literal["text", "json"]


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message [source]` for warnings and above, the bare message below."""

    def format(self, record: logging.LogRecord) -> str:
        msg = clean(record.getMessage())
        source = getattr(record, "source", None)
        if source:
            msg = f"{clean(str(source))}: {msg}"
        if record.levelno >= logging.WARNING:
            msg = f"{record.levelname.lower()}: {msg}"
        if record.exc_info and record.levelno >= logging.ERROR:
            msg += " (" + clean(str(record.exc_info[1])) + ")"
        return msg


class JsonFormatter(logging.Formatter):
    """One object a line: time (ISO 8601 UTC), level, logger, message, and `source` when the record is about
    one camera or recording."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clean(record.getMessage()),
        }
        source = getattr(record, "source", None)
        if source:
            line["source"] = clean(str(source))
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = clean(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
        return json.dumps(line, ensure_ascii=False)


def setup(level: str = "info", fmt: Format = "text", stream: TextIO | None = None) -> logging.Handler:
    """Route the package's loggers to `stream` (stderr) at `level`; replaces a handler set up before."""
    root = logging.getLogger(LOGGER)
    for old in [h for h in root.handlers if getattr(h, "_enhance", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._enhance = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    return handler
