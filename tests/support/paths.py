"""Where the shared models and data are, and helpers that run the command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
IMAGES = SHARED / "data" / "images"
VIDEO = SHARED / "data" / "video"
FACES = SHARED / "data" / "faces"
HEADS = VIDEO / "talking_heads"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"needs the shared models and data in {SHARED}")


def require(*paths: Path) -> None:
    """Skip the test (or fixture) when data it reads is not there."""
    for p in paths:
        if not p.exists():
            pytest.skip(f"needs {p} (shared models and data)")


def run_cli(*args: str, timeout: float = 600, env: dict | None = None):
    """Run `run.py` in a subprocess the way a user does; returns CompletedProcess."""
    import subprocess

    e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=e)


def report_runs(path: Path) -> list[dict[str, str]]:
    """report.html's source table read back: one row per run, keyed by the column headers."""
    from html.parser import HTMLParser

    class Table(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.inside = self.cell = False

        def handle_starttag(self, tag: str, attrs: list) -> None:
            if tag == "table" and ("class", "run") in attrs:
                self.inside = True
            elif self.inside and tag == "tr":
                self.rows.append([])
            elif self.inside and tag in ("td", "th"):
                self.cell = True
                self.rows[-1].append("")

        def handle_endtag(self, tag: str) -> None:
            if tag == "table":
                self.inside = False
            elif tag in ("td", "th"):
                self.cell = False

        def handle_data(self, data: str) -> None:
            if self.inside and self.cell:
                self.rows[-1][-1] += data.strip()

    t = Table()
    t.feed(Path(path).read_text(encoding="utf-8"))
    head, *rows = t.rows
    return [dict(zip(head, r)) for r in rows]
