"""faces.csv and detections.jsonl in supervision's shapes, read back with pandas and supervision themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import OutputConfig
from pipeline.core.types import Face
from pipeline.io.sinks import Manifest, TrackWriter
from pipeline.io.sinks.detections import COLUMNS, SUPERVISION_COLUMNS
from support.formats import supervision_header
from support.tracks import load_photo, make_track

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def photo():
    return load_photo()


def test_faces_csv_is_supervision_shaped_and_numeric(tmp_path: Path) -> None:
    assert SUPERVISION_COLUMNS == supervision_header(tmp_path) == COLUMNS[:7]
    m = Manifest(tmp_path / "run", {"inputs": ["x"]})
    edge = Face(box=np.array([-3.5, -1.25, 20, 30], np.float32), kps=np.full((5, 2), -1.0, np.float32), score=0.71,
                frame_index=4, time=0.16, source="=cam+1", track_id=-1)  # a face cut by the frame's edge
    m.add_faces([edge])
    m.close()
    df = pd.read_csv(tmp_path / "run" / "faces.csv")
    assert list(df.columns) == COLUMNS
    assert [str(t) for t in df.dtypes[:7]] == ["float64"] * 4 + ["int64", "float64", "int64"]
    assert df.loc[0, "x_min"] == -3.5 and df.loc[0, "y_min"] == -1.2 and df.loc[0, "tracker_id"] == -1
    assert json.loads(df.loc[0, "keypoints"]) == [[-1.0, -1.0]] * 5
    assert df.loc[0, "source"] == "'=cam+1"  # shown as text, never run
    (row,) = [json.loads(x) for x in (tmp_path / "run" / "detections.jsonl").read_text().splitlines()]
    assert list(row) == COLUMNS and row["source"] == "=cam+1" and row["x_min"] == -3.5  # JSON needs no escaping


@pytest.mark.parametrize("sheets", [False, True], ids=["tiles", "sheets"])
def test_a_tracks_rows_name_its_enhanced_tiles(tmp_path: Path, photo: np.ndarray, sheets: bool) -> None:  # noqa: F811
    track = make_track(photo, n=4, enhanced_frames=(1, 3))
    written = TrackWriter(tmp_path, OutputConfig(), sheets=sheets, dedupe=1.0).write_track(track)
    assert written.best_tile == "tracks/3/best.png" and (tmp_path / written.best_tile).is_file()
    assert [r["frame"] for r in written.rows] == [10, 11, 12, 13]
    assert [r["enhanced"] for r in written.rows] == [0, 1, 0, 1] and {r["tracker_id"] for r in written.rows} == {3}
    files = [r["enhanced_file"] for r in written.rows]
    assert files[0] == files[2] == ""
    for name in (files[1], files[3]):
        path, _, cell = name.partition("#xywh=")
        assert (tmp_path / path).is_file(), name
        # with sheets the gallery's few also get single files, the row names those; the cell form otherwise
        assert not cell or (path.endswith(".png") and len(cell.split(",")) == 4)


def test_tile_sheet_rows_point_at_their_cell(tmp_path: Path, photo: np.ndarray) -> None:  # noqa: F811
    """More enhanced observations than the gallery shows: the rest are named by their cell on the sheet."""
    track = make_track(photo, n=6, enhanced_frames=(0, 1, 2, 3, 4, 5))
    rows = TrackWriter(tmp_path, OutputConfig(gallery_per_track=1), sheets=True, dedupe=1.0).write_track(track).rows
    cells = [r["enhanced_file"] for r in rows if "#xywh=" in r["enhanced_file"]]
    assert len(cells) == 5, rows
    assert cells[0] == "tracks/3/tiles_enhanced_01.png#xywh=0,0,128,128"
    index = json.loads((tmp_path / "tracks" / "3" / "tiles.json").read_text())
    placed = {o["frame"]: o["tiles"]["enhanced"] for o in index["observations"]}
    for r in rows:
        file, box = placed[r["frame"]]["file"], placed[r["frame"]]["box"]
        if "#xywh=" in r["enhanced_file"]:
            assert r["enhanced_file"] == f"tracks/3/{file}#xywh={','.join(map(str, box))}"
