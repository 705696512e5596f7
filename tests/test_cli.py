"""Bad input from the command line: one line naming the problem, non-zero exit, no traceback."""

import shutil

import pytest

from conftest import MODELS, VIDEO, needs_shared, run_cli
from media import corrupt_middle, make_audio_only, truncate

OFFICE = VIDEO / "office_fisheye_cctv.mp4"


def _one_line_error(proc, *needles):
    assert proc.returncode != 0, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def _process(*args, out, models=MODELS, env=None):
    return run_cli("process", *map(str, args), "--out", str(out), "--models", str(models), "--quiet", env=env)


def test_missing_file(tmp_path):
    _one_line_error(_process(tmp_path / "nope.mp4", out=tmp_path / "o"), "nope.mp4")


def test_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    _one_line_error(_process(tmp_path / "empty", out=tmp_path / "o"), "empty")


def test_zero_length_file(tmp_path):
    (tmp_path / "zero.mp4").write_bytes(b"")
    _one_line_error(_process(tmp_path / "zero.mp4", out=tmp_path / "o"), "zero.mp4")


def test_not_a_video(tmp_path):
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 100)
    _one_line_error(_process(tmp_path / "text.mp4", out=tmp_path / "o"), "text.mp4")


def test_no_video_stream(tmp_path):
    audio = make_audio_only(tmp_path / "voice.m4a")
    _one_line_error(_process(audio, out=tmp_path / "o"), "voice.m4a")


@needs_shared
def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a regular file where a folder should go: fails even for root
    _one_line_error(_process(OFFICE, out=blocker / "out"), "output folder")


def test_bad_config_file_key_and_value(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("detect: {threshold: [0.3\n")
    _one_line_error(run_cli("process", str(OFFICE), "--out", str(tmp_path / "o"), "--config", str(bad)), "bad YAML")
    _one_line_error(run_cli("process", str(OFFICE), "--out", str(tmp_path / "o"), "--set", "detect.bogus=1"),
                    "detect.bogus")
    _one_line_error(run_cli("process", str(OFFICE), "--out", str(tmp_path / "o"), "--set", "detect.threshold=7"),
                    "detect.threshold", "out of range")


@needs_shared
def test_missing_models_say_where_they_looked(tmp_path):
    empty = tmp_path / "models"
    empty.mkdir()
    err = _one_line_error(
        _process(OFFICE, out=tmp_path / "o", models=empty, env={"ENHANCE_MODELS": "", "INSIGHTFACE_HOME": str(tmp_path / "if")}),
        "det_500m.onnx",
    )
    assert str(empty) in err


@needs_shared
def test_wrong_extension_still_processes(tmp_path):
    renamed = tmp_path / "clip.avi"
    shutil.copy(OFFICE, renamed)
    proc = run_cli("process", str(renamed), "--out", str(tmp_path / "o"), "--models", str(MODELS), "--quiet",
                   "--set", "source.max_frames=20", "--set", "output.gallery=false")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "annotated.mp4").stat().st_size > 0


@needs_shared
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_video_yields_what_decodes(tmp_path, damage):
    bad = tmp_path / f"{damage}.mp4"
    if damage == "truncated":
        truncate(OFFICE, bad, 0.3)
    else:
        corrupt_middle(OFFICE, bad)
    proc = run_cli("process", str(bad), "--out", str(tmp_path / "o"), "--models", str(MODELS), "--quiet",
                   "--set", "enhance.policy=none", "--set", "detect.stride=5", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    import json

    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["stats"]["frames"] > 0
    if damage == "truncated":
        assert manifest["stats"]["frames"] < 641


@needs_shared
def test_dry_run_checks_without_processing(tmp_path):
    proc = run_cli("process", str(OFFICE), "--out", str(tmp_path / "o"), "--models", str(MODELS), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "640x360" in proc.stdout and "det_500m.onnx" in proc.stdout
    assert not (tmp_path / "o" / "annotated.mp4").exists()


@needs_shared
def test_bench_checks_its_clip_and_detector_before_timing(tmp_path):
    env = {"ENHANCE_MODELS": "", "INSIGHTFACE_HOME": str(tmp_path)}
    no_det = run_cli("bench", "--clip", str(OFFICE), "--models", str(tmp_path), "--json", str(tmp_path / "b.json"),
                     env=env)
    _one_line_error(no_det, "det_500m.onnx", "--models")
    no_clip = run_cli("bench", "--clip", str(tmp_path / "gone.mp4"), "--models", str(MODELS))
    _one_line_error(no_clip, "gone.mp4")
    for proc in (no_det, no_clip):  # neither spent minutes on generator timings first
        assert "faces/s" not in proc.stdout, proc.stdout
