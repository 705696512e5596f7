"""Inputs by the folder or list: every recording in an archive (recursively, stable order, named by its path),
list files, output folder names, and `--jobs` on the local engine."""

from __future__ import annotations

import json
import shutil

import av
import pytest

from pipeline.run.inputs import Input, default_jobs, expand, folder_names
from support.media import make_channels, make_video, pattern
from support.paths import MODELS, VIDEO, needs_shared, report_runs, run_cli


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


def test_a_recording_with_several_cameras_is_one_input_per_camera(tmp_path):
    """A DVR export with two channels and a cover picture, alone and inside an archive: two inputs each."""
    channels = [[pattern(i) for i in range(4)], [pattern(i, (96, 64)) for i in range(4)]]
    dvr = make_channels(tmp_path / "dvr.mp4", channels)
    (tmp_path / "archive" / "cam1").mkdir(parents=True)
    make_channels(tmp_path / "archive" / "cam1" / "0001.mp4", channels)
    _video(tmp_path / "archive" / "0002.mp4", frames=4)
    assert expand([str(dvr)]) == [Input(f"{dvr}:v:0"), Input(f"{dvr}:v:1")]
    found = expand([str(tmp_path / "archive")])
    assert [i.name for i in found] == ["0002.mp4", "cam1/0001.mp4:v:0", "cam1/0001.mp4:v:1"]
    assert folder_names([(i.label(), i.live) for i in found]) == ["0002", "cam1_0001_v0", "cam1_0001_v1"]
    assert expand([f"{dvr}:v:1"]) == [Input(f"{dvr}:v:1")]  # one camera, asked for


def test_folder_names_are_unique_and_cameras_keep_their_names():
    assert folder_names([("a.mp4", False), ("x/a.mp4", False), ("a.mkv", False), ("lobby.cam", True),
                         ("10.0.0.5/stream1", True)]) == ["a", "x_a", "a_", "lobby.cam", "10.0.0.5_stream1"]


def test_default_jobs_is_at_least_one_and_fewer_for_large_frames():
    from pipeline.run.inputs import MEMORY_PER_PIXEL, available_memory

    assert default_jobs() >= 1 and default_jobs(1 << 40) == 1
    assert default_jobs(3840 * 2160) <= max(1, available_memory() // (MEMORY_PER_PIXEL * 3840 * 2160))
    assert default_jobs(3840 * 2160) <= default_jobs(640 * 360)


@pytest.mark.slow
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


@pytest.mark.slow
@needs_shared
def test_each_camera_of_a_dvr_export_gets_its_own_run(tmp_path):
    """Real faces on two channels (the office recording, and the same mirrored as a second camera) behind a
    cover picture: two runs, each with its own faces, named by its stream; one report over both."""
    with av.open(str(VIDEO / "office_fisheye_cctv.mp4")) as c:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(30), c.decode(video=0))]
    dvr = make_channels(tmp_path / "dvr.mp4", [frames, [f[:, ::-1].copy() for f in frames]])
    out = tmp_path / "o"
    proc = run_cli("process", str(dvr), "--out", str(out), "--models", str(MODELS), "--quiet",
                   "--set", "enhance.policy=none")
    assert proc.returncode == 0, proc.stderr
    centre = []
    for n in (0, 1):
        m = json.loads((out / f"dvr_v{n}" / "manifest.json").read_text())
        assert m["status"] == "complete" and m["inputs"] == [f"{dvr}:v:{n}"] and m["stats"]["frames"] == 30
        assert m["stats"]["faces"] > 0 and m["stats"]["tracks"] > 0
        rows = [json.loads(x) for x in (out / f"dvr_v{n}" / "detections.jsonl").read_text().splitlines()]
        assert {r["source"] for r in rows} == {f"dvr.mp4:v:{n}"}
        centre.append(sum(r["x_min"] + r["x_max"] for r in rows) / (2 * len(rows)))
    width = frames[0].shape[1]
    assert abs(centre[0] - centre[1]) > 50 and abs(centre[1] - (width - centre[0])) < 15  # the mirrored camera
    assert sorted(r["source"] for r in report_runs(out / "report.html")) == [f"{dvr}:v:0", f"{dvr}:v:1"]


# ------------------------------------------------------------------------------ outputs never become inputs


@pytest.mark.slow
def test_an_output_folder_inside_the_input_folder_is_not_read_back(tmp_path):
    """`process cams/ --out cams/results`, twice (the second with --overwrite): the first run's annotated
    videos are never taken for cameras, and a folder holding an older run is skipped too."""
    root = tmp_path / "cams"
    _video(root / "a.mp4", frames=5)
    _video(root / "b" / "1.mp4", frames=5)
    out = root / "results"
    for extra in ([], ["--overwrite"]):
        proc = run_cli("process", str(root), "--out", str(out), "--models", str(MODELS), "--quiet",
                       "--set", "enhance.policy=none", *extra)
        assert proc.returncode == 0, proc.stderr
        assert sorted(d.name for d in out.iterdir() if d.is_dir()) == ["a", "b_1"]  # no results_a_annotated
        for name in ("a", "b_1"):
            m = json.loads((out / name / "manifest.json").read_text())
            assert m["status"] == "complete" and m["stats"]["frames"] == 5
    (out).rename(root / "old run")  # an earlier run's folder under another name: still not an input
    assert [i.name for i in expand([str(root)], out=tmp_path / "elsewhere")] == ["a.mp4", "b/1.mp4"]


@pytest.mark.slow
def test_the_input_folder_as_output_is_refused_in_one_line(tmp_path):
    root = tmp_path / "cams"
    _video(root / "a.mp4", frames=5)
    proc = run_cli("process", str(root), "--out", str(root), "--models", str(MODELS), "--quiet", "--overwrite")
    err = proc.stderr.strip()
    assert proc.returncode != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "is the input folder" in err
    assert sorted(p.name for p in root.iterdir()) == ["a.mp4"]  # nothing written, nothing removed


@pytest.mark.slow
def test_overwrite_never_deletes_an_input(tmp_path):
    """A single recording's run writes annotated.mp4 into OUT; a rerun that reads that video into OUT with
    --overwrite would delete it mid-run: refused, and the file is still there. A folder that holds a run,
    given as input, does not yield its annotated video either."""
    clip = _video(tmp_path / "clip.mp4", frames=5)
    out = tmp_path / "o"
    first = run_cli("process", str(clip), "--out", str(out), "--models", str(MODELS), "--quiet",
                    "--set", "enhance.policy=none")
    assert first.returncode == 0, first.stderr
    video = out / "annotated.mp4"
    size = video.stat().st_size
    again = run_cli("process", str(video), "--out", str(out), "--models", str(MODELS), "--quiet", "--overwrite")
    err = again.stderr.strip()
    assert again.returncode != 0 and len(err.splitlines()) == 1 and "earlier run's output" in err, err
    assert video.stat().st_size == size
    shutil.copy(clip, out / "mine.mp4")  # a recording of the user's own, kept beside a run
    assert [i.name for i in expand([str(out)], out=tmp_path / "other")] == ["mine.mp4"]


@pytest.mark.slow
def test_control_characters_in_names_cannot_split_or_forge_a_line(tmp_path):
    """A recording called "cam<newline>FAKE: complete…" and an output folder with a newline and an escape
    sequence: every progress line, log line, summary, event and the report's title keep them escaped."""
    clip = _video(tmp_path / "cam\nFAKE: complete.mp4", frames=12)
    out = tmp_path / "out\n\x1b[2Jx"
    proc = run_cli("process", str(clip), "--out", str(out), "--models", str(MODELS), "--progress-interval", "0.1",
                   "--set", "enhance.policy=none")
    assert proc.returncode == 0, proc.stderr
    lines = (proc.stdout + proc.stderr).splitlines()
    assert any("cam\\nFAKE: complete.mp4" in x for x in lines)  # the progress lines name it, escaped
    assert not any(x.startswith("FAKE") for x in lines) and "\x1b" not in proc.stdout + proc.stderr
    assert any("out\\n\\x1b[2Jx" in x for x in lines)  # the summary's output folder
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert {e["source"] for e in events} == {"cam\\nFAKE: complete.mp4"}
    report = (out / "report.html").read_text()
    title = report[report.index("<title>"):report.index("</title>")]
    assert "\n" not in title and "cam\\nFAKE" in title
