"""Bad input from the command line: one line naming the problem, non-zero exit, no traceback."""

import shutil

import pytest

from support.media import corrupt_middle, make_audio_only, truncate
from support.paths import MODELS, VIDEO, needs_shared, require, run_cli

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


@pytest.mark.slow
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


@pytest.mark.slow
@needs_shared
def test_wrong_extension_still_processes(tmp_path):
    renamed = tmp_path / "clip.avi"
    shutil.copy(OFFICE, renamed)
    proc = run_cli("process", str(renamed), "--out", str(tmp_path / "o"), "--models", str(MODELS), "--quiet",
                   "--set", "source.max_frames=20", "--set", "output.gallery=false")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "annotated.mp4").stat().st_size > 0


@pytest.mark.slow
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
    assert manifest["status"] == "complete_with_errors"  # skipped packets or missing frames: said, not hidden
    if damage == "truncated":
        assert manifest["stats"]["frames"] < 641


@needs_shared
def test_dry_run_checks_without_processing(tmp_path):
    proc = run_cli("process", str(OFFICE), "--out", str(tmp_path / "o"), "--models", str(MODELS), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "640x360" in proc.stdout and "det_500m.onnx" in proc.stdout
    assert not (tmp_path / "o" / "annotated.mp4").exists()


@pytest.mark.slow
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


# ------------------------------------------------------------------------------ hostile and damaged input


@pytest.mark.slow
def test_tiny_picture_non_utf8_yaml_bad_url_are_one_line(tmp_path):
    import cv2
    import numpy as np

    dot = tmp_path / "dot.png"
    cv2.imwrite(str(dot), np.zeros((1, 1, 3), np.uint8))
    _one_line_error(_process(dot, out=tmp_path / "o"), "dot.png", "1x1", "detect.min_face")
    assert not (tmp_path / "o").exists()  # refused before anything was written
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("detect: {threshold: 0.4}  # caf\xe9\n".encode("latin-1"))
    _one_line_error(run_cli("process", str(dot), "--out", str(tmp_path / "o"), "--config", str(latin)),
                    "latin1.yaml", "not UTF-8")
    _one_line_error(_process("rtsp://[::1", out=tmp_path / "o"), "rtsp://[::1", "Invalid IPv6 URL")


def test_nan_and_infinity_are_rejected(tmp_path):
    from pipeline.core.config import load_config
    from pipeline.core.errors import ConfigError

    for setting in ("detect.threshold=.nan", "source.read_timeout_s=.nan", "track.lost_seconds=.inf",
                    "source.image_fps=-.inf"):
        with pytest.raises(ConfigError, match=f"{setting.split('=')[0]}: .* is not a finite number"):
            load_config(None, [setting])
    _one_line_error(run_cli("process", str(OFFICE), "--out", str(tmp_path / "o"), "--set", "detect.threshold=.nan"),
                    "detect.threshold", "not a finite number")


def test_truncated_file_counts_expected_decoded_skipped(tmp_path):
    """Cut at 10/50/90 %: every frame that decodes comes out, the same as PyAV's own count, and the
    container's frame count shows how many are missing."""
    from pipeline.core.config import SourceConfig
    from pipeline.io.sources import open_source

    require(OFFICE)
    for fraction in (0.1, 0.5, 0.9):
        cut = truncate(OFFICE, tmp_path / f"cut{int(fraction * 100)}.mp4", fraction)
        with open_source(str(cut), SourceConfig()) as src:
            n = sum(1 for _ in src)
            assert src.frames_expected == 641 and src.skipped == 0
        assert 0 < n < 641 and n == decoded_by_pyav(cut)


def decoded_by_pyav(path) -> int:
    """Frames plain PyAV gets out of a file, decoder drained at the end, errors skipped."""
    import av

    n = 0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        try:
            for packet in c.demux(stream):
                try:
                    n += len(packet.decode())
                except av.error.FFmpegError:
                    pass
        except av.error.FFmpegError:
            pass
        try:
            n += len(stream.codec_context.decode(None))
        except av.error.FFmpegError:
            pass
    return n


@pytest.mark.slow
@needs_shared
def test_cut_file_is_complete_with_errors_and_formula_names_are_escaped(tmp_path):
    """A recording cut at half its size, named like a spreadsheet formula."""
    import csv
    import json

    cut = truncate(OFFICE, tmp_path / "=1+2.mp4", 0.5)
    out = tmp_path / "o"
    proc = run_cli("process", str(cut), "--out", str(out), "--models", str(MODELS), "--quiet",
                   "--set", "enhance.policy=none", "--set", "detect.stride=5")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "manifest.json").read_text())
    s = m["stats"]
    assert m["status"] == "complete_with_errors"
    assert s["frames_expected"] == 641 and 0 < s["frames"] == decoded_by_pyav(cut) < 641
    assert "input ends early" in s["decode_errors"][-1]
    assert f"complete_with_errors: {s['frames']} of 641 frames" in proc.stdout
    rows = list(csv.DictReader((out / "faces.csv").open(encoding="utf-8")))
    assert rows and all(r["source"] == "'=1+2.mp4" for r in rows)  # shown as text, never run
