"""What other tools write, for comparing our files with theirs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import supervision as sv


def supervision_header(tmp_path: Path) -> list[str]:
    """The header supervision's own CSVSink writes for detections with a tracker id."""
    path = tmp_path / "sv.csv"
    dets = sv.Detections(xyxy=np.array([[1, 2, 3, 4]], np.float32), confidence=np.array([0.9], np.float32),
                         class_id=np.array([0]), tracker_id=np.array([7]))
    with sv.CSVSink(str(path)) as sink:
        sink.append(dets)
    return next(csv.reader(path.open()))
