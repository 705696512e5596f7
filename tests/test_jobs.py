"""Jobs you can trust (docs/jobs.md), on the local engine: run identity (a rerun skips what is done with the
same input and settings, refuses in one line what was made otherwise, `--overwrite` redoes it), one batch
semantics (a bad file fails on its own, the others go on; exit codes), and `--progress json` lines that
all validate against the schema file shipped in the package. test_ray.py runs the same on Ray.
"""

from __future__ import annotations

import json

import pytest

from pipeline.core.config import load_config
from pipeline.run.batch import differences, identity, output_settings
from pipeline.run.progress import SCHEMA_FILE
from support.jobs import FAST, FRAMES, JSON, clips, progress_lines
from support.paths import MODELS, needs_shared, run_cli

pytestmark = pytest.mark.slow  # end-to-end runs of real video and servers: the full suite, not the fast lane


def test_identity_names_the_settings_that_change_outputs(tmp_path):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x" * 100)
    sha = {"detector": "d" * 64}
    default = output_settings(load_config(None, []))
    base = identity(str(clip), default, sha)
    other = load_config(None, ["detect.model=det_2.5g.onnx", "enhance.policy=all"])
    assert differences(base, identity(str(clip), output_settings(other), sha)) == ["detect.model", "enhance.policy"]
    where = load_config(None, ["device=cpu", "detect.threads=2", "enhance.batch_size=4", "enhance.backend=torch-cpu"])
    assert differences(base, identity(str(clip), output_settings(where), sha)) == []  # where, not what
    assert differences(base, identity(str(clip), default, {"detector": "e" * 64})) == \
        ["weights.detector"]
    clip.write_bytes(b"y" * 101)
    assert "input.size" in differences(base, identity(str(clip), default, sha))
    hashed = identity(str(clip), default, sha, content=True)
    assert len(hashed["input"]["sha256"]) == 64 and "mtime_ns" not in hashed["input"]
    assert differences(None, base) == ["identity (the earlier run recorded none)"]


@needs_shared
def test_rerun_skips_refuses_other_settings_and_overwrite_redoes(tmp_path):
    folder = clips(tmp_path / "in", ["a.mp4", "b.mp4"])
    out = tmp_path / "o"
    first = run_cli("process", str(folder), "--out", str(out), *FAST, *JSON, timeout=900)
    assert first.returncode == 0, first.stderr
    final = progress_lines(first.stderr)[-1]
    assert (final["outcome"], final["exit_code"], final["engine"]) == ("complete", 0, "local")
    assert {s["source"]: (s["state"], s["frames"]) for s in final["sources"]} == \
        {"a.mp4": ("complete", FRAMES), "b.mp4": ("complete", FRAMES)}
    job = json.loads((out / "manifest.json").read_text())
    assert job["kind"] == "job" and job["engine"] == "local" and job["recordings"]["complete"] == 2
    before = {n: (out / n / "manifest.json").stat().st_mtime_ns for n in ("a", "b")}

    again = run_cli("process", str(folder), "--out", str(out), *FAST, *JSON, timeout=900)
    assert again.returncode == 0, again.stderr
    (final,) = progress_lines(again.stderr)  # nothing ran: the final line alone
    assert final["outcome"] == "complete" and final["exit_code"] == 0
    assert [s["state"] for s in final["sources"]] == ["skipped", "skipped"]
    assert before == {n: (out / n / "manifest.json").stat().st_mtime_ns for n in ("a", "b")}  # untouched
    assert [r["status"] for r in json.loads((out / "manifest.json").read_text())["runs"]] == ["skipped", "skipped"]

    changed = ["--set", "detect.model=det_2.5g.onnx"]
    refused = run_cli("process", str(folder), "--out", str(out), *FAST, *changed, *JSON, timeout=900)
    assert refused.returncode == 74, refused.stderr
    plain = [x for x in refused.stderr.splitlines() if not x.startswith("{")]
    assert len(plain) == 1 and "detect.model" in plain[0] and "--overwrite" in plain[0], refused.stderr
    error, final = progress_lines(refused.stderr)
    assert error["state"] == "error" and "detect.model" in error["error"]
    assert (final["outcome"], final["exit_code"]) == ("refused", 74)
    assert before == {n: (out / n / "manifest.json").stat().st_mtime_ns for n in ("a", "b")}

    redo = run_cli("process", str(folder), "--out", str(out), *FAST, *changed, "--overwrite", *JSON, timeout=900)
    assert redo.returncode == 0, redo.stderr
    assert progress_lines(redo.stderr)[-1]["exit_code"] == 0
    job = json.loads((out / "manifest.json").read_text())
    assert job["settings"]["detect"]["model"] == "det_2.5g.onnx" and job["recordings"]["complete"] == 2
    for run in job["runs"]:
        own = json.loads((out / run["name"] / "manifest.json").read_text())
        assert own["settings"] == job["settings"] and own["identity"] == run["identity"]
        assert own["identity"]["settings"]["detect.model"] == "det_2.5g.onnx"
        assert own["models"].keys() == {"det_2.5g.onnx"}


@needs_shared
def test_a_bad_file_fails_on_its_own_and_the_rest_goes_on(tmp_path):
    folder = clips(tmp_path / "in", ["good.mp4"])
    (folder / "bad.mp4").write_bytes(b"")
    out = tmp_path / "o"
    proc = run_cli("process", str(folder), "--out", str(out), *FAST, *JSON, timeout=900)
    assert proc.returncode == 1, proc.stderr
    assert f"failed: bad.mp4: empty file (0 bytes): {folder / 'bad.mp4'}" in proc.stderr
    lines = progress_lines(proc.stderr)
    errors = [x for x in lines if x["state"] == "error"]
    assert [(x["source"], x["error"]) for x in errors] == [("bad.mp4", f"empty file (0 bytes): {folder / 'bad.mp4'}")]
    assert (lines[-1]["outcome"], lines[-1]["exit_code"]) == ("incomplete", 1)
    job = json.loads((out / "manifest.json").read_text())
    runs = {r["name"]: r for r in job["runs"]}
    assert runs["good"]["status"] == "complete" and runs["good"]["frames"] == FRAMES
    assert runs["bad"]["status"] == "failed" and runs["bad"]["reason"] == errors[0]["error"]
    assert json.loads((out / "good" / "manifest.json").read_text())["status"] == "complete"
    assert not (out / "bad").exists()

    again = run_cli("process", str(folder), "--out", str(out), *FAST, "--quiet", timeout=900)  # good skipped, bad
    assert again.returncode == 1 and "skipped: good.mp4" in again.stdout, again.stdout + again.stderr  # tried again


@needs_shared
def test_an_interrupted_recording_is_redone_without_overwrite(tmp_path):
    folder = clips(tmp_path / "in", ["a.mp4", "b.mp4"], frames=10)
    out = tmp_path / "o"
    assert run_cli("process", str(folder), "--out", str(out), *FAST, "--quiet", timeout=900).returncode == 0
    m = json.loads((out / "a" / "manifest.json").read_text())
    (out / "a" / "manifest.json").write_text(json.dumps({**m, "status": "interrupted"}))  # as a stopped run leaves it
    again = run_cli("process", str(folder), "--out", str(out), *FAST, *JSON, timeout=900)
    assert again.returncode == 0, again.stderr
    states = {s["source"]: s["state"] for s in progress_lines(again.stderr)[-1]["sources"]}
    assert states == {"a.mp4": "complete", "b.mp4": "skipped"}
    assert json.loads((out / "a" / "manifest.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_nothing_could_start_is_an_error_line_and_a_final_line(tmp_path, engine):
    if engine == "ray":
        pytest.importorskip("ray")
    proc = run_cli("process", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o"), "--models", str(MODELS),
                   "--engine", engine, *JSON, timeout=300)
    assert proc.returncode == 2, proc.stderr
    error, final = progress_lines(proc.stderr)
    assert "nope.mp4" in error["error"] and error["source"] is None
    assert (final["outcome"], final["exit_code"], final["engine"], final["sources"]) == ("failed", 2, engine, [])
    plain = [x for x in proc.stderr.splitlines() if not x.startswith("{")]
    assert len(plain) == 1 and "nope.mp4" in plain[0]  # and the usual one line for people


def test_the_schema_file_ships_in_the_wheel():
    import tomllib

    from support.paths import ROOT

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert SCHEMA_FILE.name in data["pipeline.run"] and SCHEMA_FILE.is_file()


def test_claim_job_decides_each_folder_by_identity(tmp_path):
    from pipeline.core.errors import OutputError
    from pipeline.run.outdir import claim_job

    ident = {"input": {"path": "/x/a.mp4"}, "settings": {"detect.model": "det_500m.onnx"}, "weights": {},
             "version": "1"}
    other = {**ident, "settings": {"detect.model": "det_2.5g.onnx"}}
    out = tmp_path / "o"

    def run(name: str, status: str, identity: dict | None = ident) -> None:
        (out / name / "tracks").mkdir(parents=True)
        (out / name / "manifest.json").write_text(json.dumps({"status": status, "identity": identity}))

    run("done", "complete")
    run("cut", "interrupted", other)
    run("old", "complete", other)
    run("cam", "interrupted")
    run("broken", "complete")  # a recording that cannot be opened now: its folder is the job's, not foreign
    (out / "notes.txt").write_text("mine")
    targets = [(out / "done", ident, False), (out / "cut", ident, False), (out / "old", ident, False),
               (out / "new", ident, False), (out / "cam", ident, True)]
    with pytest.raises(OutputError) as refused:
        claim_job(out, targets, others=["broken"])
    assert "2 runs" in str(refused.value) and "detect.model" in str(refused.value) and "camera" in str(refused.value)
    assert (out / "cut" / "tracks").is_dir()  # nothing changed by a refusal
    # without the differing run: skip the finished one, redo the unfinished one, start the new one
    with claim_job(out, [targets[0], targets[1], targets[3]], others=["broken", "old", "cam"]) as claim:
        assert claim.decisions == ["skip", "redo", "new"]
    assert not (out / "cut" / "tracks").exists() and (out / "done" / "tracks").is_dir()
    (out / "stray").mkdir()
    (out / "stray" / "manifest.json").write_text("{}")
    with pytest.raises(OutputError, match="holds runs of other inputs"):
        claim_job(out, [targets[0]], others=["broken", "old", "cam", "cut"])
    with claim_job(out, [targets[0]], overwrite=True) as claim:
        assert claim.decisions == ["redo"]
    assert sorted(p.name for p in out.iterdir()) == ["cut", "done", "new", "notes.txt"]  # only runs' outputs go
    assert not any(any((out / n).iterdir()) for n in ("cut", "done", "new"))  # (folders made for runs, left empty)
