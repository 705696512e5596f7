"""The whole pipeline on real CCTV footage, and an interrupted run that still leaves playable output."""

import csv
import json
import signal
import subprocess
import sys
import time

import av
import cv2
import pytest

from pipeline.stages.enhance.generator import NAME
from support.paths import MODELS, ROOT, VIDEO, needs_shared, report_runs, run_cli

OFFICE = VIDEO / "office_fisheye_cctv.mp4"
pytestmark = [pytest.mark.slow, needs_shared]


def _frames_and_duration(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        times = [f.time for f in c.decode(s)]
    return len(times), times[-1] - times[0]


@pytest.fixture(scope="module")
def office_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("office")
    proc = run_cli("process", str(OFFICE), "--out", str(out), "--models", str(MODELS), "--quiet", timeout=1200)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_office_tracks_and_tiles(office_run):
    out, proc = office_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    tracks = manifest["tracks"]
    long_tracks = [t for t in tracks if t["n_observations"] >= 20]
    assert len(long_tracks) >= 3, tracks  # several people followed over many frames
    for t in tracks:
        tdir = out / "tracks" / str(t["id"])
        info = json.loads((tdir / "track.json").read_text())
        assert info["observations"], t
        for tile in tdir.glob("*_enhanced.png"):
            assert cv2.imread(str(tile)).shape == (128, 128, 3)
    assert (out / "gallery.png").stat().st_size > 10_000
    assert manifest["generator"]["sha256"] and manifest["generator"]["path"].endswith(".safetensors")
    assert "complete:" in proc.stdout and "stages:" in proc.stdout


def test_office_annotated_video_matches_input(office_run):
    out, _ = office_run
    n_in, d_in = _frames_and_duration(OFFICE)
    n_out, d_out = _frames_and_duration(out / "annotated.mp4")
    assert n_out == n_in
    assert abs(d_out - d_in) < 0.1


def test_office_manifest_matches_disk(office_run):
    out, _ = office_run
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {f["path"]: f["bytes"] for f in manifest["files"]}
    assert "annotated.mp4" in listed and "gallery.png" in listed and "faces.csv" in listed
    for rel, size in listed.items():
        assert (out / rel).stat().st_size == size, rel
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert on_disk <= set(listed)
    rows = (out / "faces.csv").read_text().strip().splitlines()
    assert len(rows) - 1 == manifest["stats"]["faces"]


def test_office_faces_csv_loads_with_pandas_in_supervisions_columns(office_run, tmp_path):
    pd = pytest.importorskip("pandas")
    from support.formats import supervision_header

    out, _ = office_run
    df = pd.read_csv(out / "faces.csv")
    assert list(df.columns[:7]) == supervision_header(tmp_path)  # x_min … tracker_id, as sv.CSVSink writes them
    assert all(str(df[c].dtype) in ("float64", "int64") for c in df.columns[:7])
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(df) == manifest["stats"]["faces"] and set(df["class_id"]) == {0}
    tracked = df[df["tracker_id"] > 0]
    assert sorted(set(tracked["tracker_id"])) == sorted(t["id"] for t in manifest["tracks"])
    for t in manifest["tracks"]:  # every observation of every track, once
        frames = tracked[tracked["tracker_id"] == t["id"]]["frame"]
        assert len(frames) == t["n_observations"] and frames.is_unique, t["id"]
    enhanced = tracked[tracked["enhanced"] == 1]
    assert len(enhanced) == sum(t["n_enhanced"] for t in manifest["tracks"]) > 0
    assert all((out / f).is_file() for f in enhanced["enhanced_file"])
    jsonl = [json.loads(x) for x in (out / "detections.jsonl").read_text().splitlines()]
    assert len(jsonl) == len(df) and jsonl[0]["keypoints"] == json.loads(df["keypoints"][0])


def test_office_report_says_what_ran(office_run):
    """The report's source table is read from this run's own manifest, written before the report."""
    out, _ = office_run
    manifest = json.loads((out / "manifest.json").read_text())
    (row,) = report_runs(out / "report.html")
    assert row["source"] == str(OFFICE) and row["status"] == "complete" and row["frames"] == "641"
    assert row["generator"].startswith(f"{NAME} · sha256 {manifest['generator']['sha256']}")
    assert row["finished"] and row["video"] == "annotated video"
    assert {"report.html", "people.json", "gallery.png"} <= {f["path"] for f in manifest["files"]}


def test_several_inputs_one_report_row_each(tmp_path):
    clip = tmp_path / "other.mp4"
    clip.write_bytes(OFFICE.read_bytes())
    proc = run_cli("process", str(OFFICE), str(clip), "--out", str(tmp_path / "o"), "--models", str(MODELS),
                   "--quiet", "--set", "source.max_frames=15", "--set", "enhance.policy=none")
    assert proc.returncode == 0, proc.stderr
    rows = report_runs(tmp_path / "o" / "report.html")  # one report over both
    assert sorted(r["source"] for r in rows) == sorted([str(OFFICE), str(clip)])
    assert all(r["status"] == "complete" and r["frames"] == "15" and r["finished"] for r in rows)
    assert all(r["generator"] == "none (enhancement off)" for r in rows)
    (own,) = report_runs(tmp_path / "o" / "other" / "report.html")  # and each run's own
    assert own["source"] == str(clip) and own["frames"] == "15"


def test_sigint_leaves_playable_video_and_manifest(tmp_path):
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "process", str(OFFICE), "--out", str(out), "--models", str(MODELS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    deadline = time.time() + 300
    csv = out / "faces.csv"
    while time.time() < deadline and (not csv.exists() or csv.stat().st_size < 2000):
        time.sleep(0.5)  # wait until real work has happened
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    n, _ = _frames_and_duration(out / "annotated.mp4")
    assert 0 < n < 641
    assert n == manifest["stats"]["frames"]
    assert any(f["path"] == "annotated.mp4" for f in manifest["files"])


def test_demo_runs(tmp_path):
    """The demo, and the same run with the detector and the embedder in torch (what a GPU without
    onnxruntime-gpu uses): the same faces, tracks, enhanced tiles and people; the manifest says which ran."""
    proc = run_cli("demo", "--out", str(tmp_path / "demo"), "--models", str(MODELS), "--quiet")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert manifest["stats"]["tracks"] >= 3
    assert manifest["stats"]["enhanced"] >= 3
    proc = run_cli("demo", "--out", str(tmp_path / "torch"), "--models", str(MODELS), "--quiet",
                   "--set", "detect.runtime=torch", "--set", "people.runtime=torch")
    assert proc.returncode == 0, proc.stderr
    other = json.loads((tmp_path / "torch" / "manifest.json").read_text())
    assert other["models"]["det_500m.onnx"]["providers"] == ["torch-cpu"]
    assert manifest["models"]["det_500m.onnx"]["providers"] == ["CPUExecutionProvider"]
    for key in ("faces", "tracks", "enhanced"):
        assert other["stats"][key] == manifest["stats"][key]
    rows = [list(csv.DictReader(open(tmp_path / run / "faces.csv"))) for run in ("demo", "torch")]
    assert len(rows[0]) == len(rows[1]) > 100
    for a, b in zip(*rows):
        assert (a["tracker_id"], a["enhanced"]) == (b["tracker_id"], b["enhanced"])
        assert max(abs(float(a[k]) - float(b[k])) for k in ("x_min", "y_min", "x_max", "y_max")) < 0.05
    people = [json.loads((tmp_path / run / "people.json").read_text()) for run in ("demo", "torch")]
    grouped = [[[t["track"] for t in p["tracks"]] for p in run["people"]] for run in people]
    assert grouped[0] == grouped[1] and people[1]["model"]["providers"] == ["torch-cpu"]
