"""Inputs by the folder or list: every recording in an archive (recursively, stable order, named by its path),
list files, output folder names, and `--jobs` on the local engine."""

from __future__ import annotations

import json

from conftest import MODELS, needs_shared, run_cli
from media import make_video

from pipeline.inputs import Input, default_jobs, expand, folder_names


def _video(path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_video(path, **kw)


def _archive(root):
    """cam10/ sorts after cam2/; a picture, a note and a hidden file are not recordings; an H.265 file with
    no extension is (by its content)."""
    _video(root / "cam2" / "0001.mp4", frames=6)
    _video(root / "cam10" / "0001.mkv", frames=6)
    _video(root / "cam2" / "clip10.avi", frames=6)
    _video(root / "cam2" / "clip9.mov", frames=6)
    _video(root / "noext", frames=6, codec="h265", container="mp4")
    (root / "cam2" / "notes.txt").write_text("not a recording")
    (root / ".hidden").mkdir()
    _video(root / ".hidden" / "skip.mp4", frames=2)
    (root / "cam2" / "still.jpg").write_bytes(b"\xff\xd8\xff")
    return root


def test_a_folder_of_recordings_is_every_video_in_it(tmp_path):
    root = _archive(tmp_path / "archive")
    found = expand([str(root)])
    assert [i.name for i in found] == ["cam2/0001.mp4", "cam2/clip9.mov", "cam2/clip10.avi", "cam10/0001.mkv",
                                       "noext"]
    assert all(i.spec == str(root / i.name) for i in found)
    assert folder_names([(i.label(), i.live) for i in found]) == ["cam2_0001", "cam2_clip9", "cam2_clip10",
                                                                  "cam10_0001", "noext"]


def test_a_folder_of_pictures_stays_one_image_sequence(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    assert expand([str(tmp_path / "pics")]) == [Input(str(tmp_path / "pics"))]


def test_a_list_file_names_one_input_per_line(tmp_path):
    root = _archive(tmp_path / "archive")
    _video(tmp_path / "single.mp4", frames=4)
    listing = tmp_path / "inputs.txt"
    listing.write_text("# tonight's cameras\n\nsingle.mp4\n  archive/cam10  \nrtsp://10.0.0.5/stream1\n"
                       f"{root / 'noext'}\n")
    found = expand([str(listing)])
    assert [(i.spec, i.name) for i in found] == [
        (str(tmp_path / "single.mp4"), None), (str(root / "cam10" / "0001.mkv"), "0001.mkv"),
        ("rtsp://10.0.0.5/stream1", None), (str(root / "noext"), None)]
    assert [i.live for i in found] == [False, False, True, False]


def test_folder_names_are_unique_and_cameras_keep_their_names():
    assert folder_names([("a.mp4", False), ("x/a.mp4", False), ("a.mkv", False), ("lobby.cam", True),
                         ("10.0.0.5/stream1", True)]) == ["a", "x_a", "a_", "lobby.cam", "10.0.0.5_stream1"]


def test_default_jobs_is_at_least_one():
    assert default_jobs() >= 1


@needs_shared
def test_local_engine_runs_a_folder_jobs_at_a_time(tmp_path):
    root = tmp_path / "archive"
    for name in ("b/2.mp4", "a.mp4", "b/10.mp4"):
        _video(root / name, frames=5)
    out = tmp_path / "o"
    proc = run_cli("process", str(root), "--out", str(out), "--models", str(MODELS), "--quiet", "--jobs", "1",
                   "--set", "enhance.policy=none")
    assert proc.returncode == 0, proc.stderr
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == ["a", "b_10", "b_2"]
    for name, rel in (("a", "a.mp4"), ("b_2", "b/2.mp4"), ("b_10", "b/10.mp4")):
        m = json.loads((out / name / "manifest.json").read_text())
        assert m["status"] == "complete" and m["stats"]["frames"] == 5 and m["inputs"] == [str(root / rel)]
    bad = run_cli("process", str(root), "--out", str(out), "--jobs", "0")
    assert bad.returncode != 0 and "--jobs" in bad.stderr and "Traceback" not in bad.stderr
