"""`enhance-faces lab gpu-run`: the prepared GPU job. Here its `--dry-run` runs the same code on the CPU (no GPU in CI),
and `--prepare` must make data that fits one device call."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from support.paths import HEADS, MODELS


@pytest.mark.slow
def test_prepare_fits_a_call_and_the_dry_run_writes_every_section(prepared: Path, tmp_path: Path, capsys):
    from pipeline.cli import main
    from pipeline.core.errors import InputError
    from pipeline.lab.gpu_run import CARRY_BYTES, CARRY_MARGIN, STILLS_SHARE, prepare

    data = tmp_path / "gpu"
    clips = tmp_path / "clips"  # the synthetic camera's faces: two of the shared talking heads
    clips.mkdir()
    for name in ("d0.mp4", "vr1.mp4"):
        (clips / name).symlink_to(HEADS / name)
    assert main(["lab", "gpu-run", "--prepare", "--data", str(data), "--faces", str(prepared), "--stills", "5",
                 "--video", str(tmp_path / "none.npz"), "--no-wheels", "--models", str(MODELS),
                 "--clips", str(clips)]) == 0
    assert len(list((data / "faces" / "train").glob("*.jpg"))) == 5 and (data / "models" / "fan68_compressed.pth").is_file()
    assert {p.name for p in (data / "models").glob("*.safetensors")} == {"det_500m.safetensors",
                                                                       "mobilefacenet_128d.safetensors"}
    cap = cv2.VideoCapture(str(data / "camera.mp4"))  # decoded as the GPU image decodes it: OpenCV
    ok, first = cap.read()
    assert ok and first.shape == (1080, 1920, 3) and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 200
    assert "MiB of the 64 MiB a call carries" in capsys.readouterr().err  # logged, on stderr
    out = tmp_path / "out"
    assert main(["lab", "gpu-run", "--dry-run", "--data", str(data), "--out", str(out), "--minutes", "5"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dry_run"] and res["environment"]["torch"] and res["finished"]
    cams = res["cameras"]  # the whole pipeline on 1 and 2 cameras, the detector and embedder in torch
    assert cams["detector"] == ["torch-cpu"] and cams["embedder"] == ["torch-cpu"]
    assert [t["cameras"] for t in cams["trials"]][:1] == [1] and cams["max_realtime_cameras"] >= 0
    for t in cams["trials"]:
        assert t["frames"] > 0 and not t.get("errors") and t["fps_per_camera"]["min"] > 0
        assert set(t["stages"]) == {"decode", "detect", "track", "align", "enhance", "annotate", "encode", "embed"}
        assert t["stages"]["detect"]["cpu_ms_per_frame"] > 0 and t["stages"]["encode"]["wall_ms_per_frame"] > 0
    assert sum(t["faces_enhanced"] for t in cams["trials"]) > 0
    assert cams["networks_alone"]["detect_whole_frame"]["input"] == [640, 384]
    assert cams["networks_alone"]["detect_small_faces"]["input"] == [1920, 1088]
    for part in ("generator", "reference"):  # a batch-1 loop and batched cells, the speed-up stated
        kinds = {r["kind"] for r in res[part]}
        assert kinds == {"loop", "batch"} and all(r["faces_per_s"] > 0 for r in res[part])
    assert sum(r["kind"] == "loop" for r in res["generator"]) == 2  # the second came from the spawned child
    assert set(res["precision"]) == {"16", "32", "64"} and res["precision"]["16"]["fp32"] > 20
    assert res["train"]["steps"] == 2 and Path(res["train"]["export"]).is_file()  # weights come back
    # a second call skips the grids: precision and the burst still run
    again = tmp_path / "again"
    assert main(["lab", "gpu-run", "--dry-run", "--no-bench", "--data", str(data), "--out", str(again)]) == 0
    res = json.loads((again / "results.json").read_text())
    assert "generator" not in res and res["precision"]["16"]["fp32"] > 20 and res["train"]["steps"] == 2
    # beside a checkout that already fills the call, nothing more fits: refused before anything travels
    with pytest.raises(InputError, match="would not travel"):
        prepare(tmp_path / "big", prepared, tmp_path / "none.npz", 5, 1.0, CARRY_BYTES,
                data / "models" / "fan68_compressed.pth", wheels=False, log=lambda m: None)
    # by default the stills take their share of whatever room the checkout leaves, and the whole fits
    fan = data / "models" / "fan68_compressed.pth"
    fixed = sum(p.stat().st_size for p in (data / "faces" / "val").glob("*")) + (data / "faces" / "val.npz").stat().st_size
    per = sum(p.stat().st_size for p in (prepared / "train").glob("*.jpg")) / len(list((prepared / "train").glob("*.jpg")))
    tree = CARRY_BYTES - CARRY_MARGIN - fixed - fan.stat().st_size - int(4 * per / STILLS_SHARE)
    got = prepare(tmp_path / "auto", prepared, tmp_path / "none.npz", None, None, tree, fan, wheels=False,
                  log=lambda m: None)
    assert 2 <= got["faces"] <= 6 and len(list((tmp_path / "auto" / "faces" / "train").glob("*.jpg"))) == got["faces"]
    assert got["bytes"] + tree <= CARRY_BYTES


def test_what_cannot_run_is_recorded_and_the_job_goes_on(tmp_path: Path):
    """The first real execution may fail in one mode or section: that becomes a result, not a lost call."""
    from pipeline.lab.gpu_bench import Clock, bench_generator_grid, isolated_cells
    from pipeline.lab.gpu_run import _section
    from pipeline.stages.enhance.generator import load_generator

    model, _ = load_generator(None)
    rows = bench_generator_grid(model, "g", entries=(16,), batches=(1,), dtypes=("fp16",), modes=("graphs",),
                                cuda=True, clock=Clock(5), budget_s=0.01, log=lambda m: None)  # torch-cuda here
    assert rows == [{"model": "g", "dtype": "fp16", "mode": "graphs",
                     "skipped": rows[0]["skipped"]}] and "no CUDA device" in rows[0]["skipped"]
    # a child that dies (AOTInductor's load segfaulted on the H200) is a row; here it cannot find its weights
    rows = isolated_cells(tmp_path / "missing.safetensors", "eager", False, Clock(5), tmp_path, lambda m: None,
                          budget_s=0.01, batches=(1,))
    assert rows == [{"model": "generator", "dtype": "fp16", "mode": "eager", "entry": 16,
                     "failed": "the process exited with code 1"}]
    res: dict = {}
    with _section(res, "precision", lambda m: None):
        raise RuntimeError("CUDA error: no kernel image is available")
    assert res == {"precision": {"failed": "RuntimeError: CUDA error: no kernel image is available"}}


def test_only_the_wheels_whose_modules_are_missing_are_installed(tmp_path: Path, monkeypatch):
    """The GPU image has some of the carried packages: those stay the image's own; a wheel goes in only where
    its module (not always named as the distribution: pydeprecate → deprecate) does not import."""
    import subprocess
    import sys

    from pipeline.lab import gpu_run

    for name in ("supervision-0.31.2-py3-none-any.whl", "pydeprecate-0.14.0-py3-none-any.whl",
                 "markdown_it_py-4.3.0-py3-none-any.whl", "not_here_pkg-1.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append(args) or
                        subprocess.CompletedProcess(args, 0, "", ""))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the folder it puts first on sys.path is undone
    gpu_run.install_wheels(tmp_path, lambda m: None)
    (args,) = calls
    assert [Path(a).name for a in args if a.endswith(".whl")] == ["not_here_pkg-1.0-py3-none-any.whl"]
