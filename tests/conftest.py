"""Shared test fixtures: the real models, photos and videos in ../shared.

Without ../shared the tests that need no data still run; those that do are skipped, saying why.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="session")
def detector():
    from pipeline.core.config import DetectConfig
    from pipeline.stages.detect import Detector

    require(MODELS / "det_500m.onnx")
    return Detector(DetectConfig(), MODELS)


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


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> Path:
    """`prepare` on 12 train and 4 val CelebA photos (and a blank one it must skip)."""
    import shutil

    import cv2
    import numpy as np

    from pipeline.lab.train.prepare import prepare

    require(FACES / "train", MODELS)
    src = tmp_path_factory.mktemp("src")
    shutil.copy(FACES / "identities.csv", src / "identities.csv")
    for split, n in (("train", 12), ("val", 4)):
        (src / split).mkdir()
        for p in sorted((FACES / split).glob("*.jpg"))[:n]:
            shutil.copy(p, src / split / p.name)
    (src / "train" / "blank.jpg").write_bytes(cv2.imencode(".jpg", np.full((200, 200, 3), 127, np.uint8))[1].tobytes())
    out = tmp_path_factory.mktemp("prepared")
    counts = prepare(src, out, str(MODELS), log=lambda m: None)
    assert counts == {"train": 12, "val": 4}  # the blank photo has no face: reported and skipped
    return out
