"""Shared fixtures. Paths and helpers live in tests/support (imported by the tests directly)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.paths import FACES, MODELS, require


@pytest.fixture(scope="session")
def detector():
    from pipeline.core.config import DetectConfig
    from pipeline.stages.detect import Detector

    require(MODELS / "det_500m.onnx")
    return Detector(DetectConfig(), MODELS)


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
