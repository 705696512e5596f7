"""Shared test fixtures: the real models, photos and videos in ../shared."""

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

if not SHARED.is_dir():
    raise pytest.UsageError(f"tests need the shared models and data beside the repo: {SHARED} is missing")


@pytest.fixture(scope="session")
def detector():
    from pipeline.config import DetectConfig
    from pipeline.detect import Detector

    return Detector(DetectConfig(), MODELS)


def run_cli(*args: str, timeout: float = 600, env: dict | None = None):
    """Run `run.py` in a subprocess the way a user does; returns CompletedProcess."""
    import subprocess

    e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=e)
