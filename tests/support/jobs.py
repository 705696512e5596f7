"""What the job tests share: short clips, the fast settings, and progress lines checked against the schema."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from jsonschema import Draft202012Validator

from pipeline.run.progress import SCHEMA_FILE

from .paths import MODELS, VIDEO

OFFICE = VIDEO / "office_fisheye_cctv.mp4"
FRAMES = 20
FAST = ["--models", str(MODELS), "--set", "enhance.policy=best_k", "--set", "output.video=false"]
JSON = ["--progress", "json", "--progress-interval", "1"]


def progress_lines(stderr: str) -> list[dict]:
    """Every JSON line on stderr, each checked against progress.schema.json; one run id, one final line, last."""
    validator = Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    lines = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    assert lines, stderr
    for line in lines:
        errors = [e.message for e in validator.iter_errors(line)]
        assert not errors, (errors, line)
        assert datetime.fromisoformat(line["time"]).tzinfo is not None
    assert len({x["run_id"] for x in lines}) == 1
    assert [x["state"] for x in lines].count("final") == 1 and lines[-1]["state"] == "final", stderr
    return lines


def clips(folder: Path, names: list[str], frames: int = FRAMES) -> Path:
    """Short clips cut from the office recording (different starts), one file each."""
    from pipeline.lab.ray_bench import cut

    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        cut(OFFICE, folder / name, 200 * k, frames)
    return folder
