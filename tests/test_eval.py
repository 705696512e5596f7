"""`eval` on a handful of real held-out faces: table, per-image CSV, sample sheet, no-face photos skipped."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from support.paths import FACES, MODELS

VAL = FACES / "val"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not VAL.is_dir(), reason="../shared/data/faces/val not available")]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    for p in sorted(VAL.glob("*.jpg"))[:6]:
        shutil.copy(p, d / p.name)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(d / "zz_noface.png"), cv2.GaussianBlur(rng.integers(0, 255, (180, 180, 3), dtype=np.uint8), (0, 0), 3))
    return d


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """The shipped generator if there is one, else an untrained one (which starts as bicubic)."""
    from pipeline.stages.enhance.generator import DEFAULT_WEIGHTS, ProgressiveGenerator, save_generator

    if DEFAULT_WEIGHTS.is_file():
        return DEFAULT_WEIGHTS
    return save_generator(ProgressiveGenerator(), tmp_path_factory.mktemp("w") / "g.safetensors", {"steps": 0})


def test_eval_clean_writes_table_csv_sheet(photos: Path, weights: Path, tmp_path: Path, capsys):
    from pipeline.cli import main

    js = tmp_path / "s.json"
    rc = main(["lab", "eval", "--faces", str(photos), "--weights", str(weights), "--models", str(MODELS),
               "--out", str(tmp_path / "ev"), "--json", str(js)])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "PSNR dB" in out and "bicubic" in out and "model" in out and "zz_noface.png (no face found)" in out
    s = json.loads(js.read_text())
    assert s["faces"] == 6 and s["skipped"] == [{"file": "zz_noface.png", "reason": "no face found"}]
    b, m = s["bicubic"], s["model"]
    assert 15 < b["psnr"] < 35 and 0.3 < b["ssim"] < 1 and 0.5 < b["msssim"] < 1
    assert -1 <= b["id_cos"] <= 1 and 0 < b["lm_nme"] < 1
    assert all(np.isfinite(v) for v in m.values())
    if s["weights_steps"] and s["weights_steps"] > 1000:  # a trained generator must beat interpolation
        assert m["psnr"] > b["psnr"] + 1.0 and m["ssim"] > b["ssim"]
    else:  # untrained = bicubic by construction
        assert abs(m["psnr"] - b["psnr"]) < 0.5
    rows = list(csv.DictReader(open(tmp_path / "ev" / "per_image.csv")))
    assert len(rows) == 7 and rows[-1]["file"] == "zz_noface.png"
    assert all(float(r["model_psnr"]) > 10 for r in rows[:6])
    sheet = cv2.imread(str(tmp_path / "ev" / "samples.png"))
    assert sheet.shape == (20 + 6 * 128, 4 * 128, 3)
    # column 4 of the sheet is the original crop; an identity-perfect output would have cosine 1 with it
    assert float(rows[0]["bicubic_id_cos"]) < 0.999


def test_eval_cctv_is_reproducible_and_harder(photos: Path, weights: Path):
    from pipeline.lab.evaluate import evaluate

    quiet = lambda m: None  # noqa: E731
    clean = evaluate(photos, 16, "clean", 0, str(weights), str(MODELS), log=quiet)
    a = evaluate(photos, 16, "cctv", 0, str(weights), str(MODELS), seed=3, log=quiet)
    b = evaluate(photos, 16, "cctv", 0, str(weights), str(MODELS), seed=3, log=quiet)
    assert a["bicubic"] == b["bicubic"] and a["model"] == b["model"]
    assert a["bicubic"]["psnr"] < clean["bicubic"]["psnr"]


@pytest.mark.parametrize("entry", [32, 64])
def test_larger_entries_score_higher(photos: Path, weights: Path, entry: int):
    from pipeline.lab.evaluate import evaluate

    s16 = evaluate(photos, 16, "clean", 3, str(weights), str(MODELS), log=lambda m: None)
    s = evaluate(photos, entry, "clean", 3, str(weights), str(MODELS), log=lambda m: None)
    assert s["entry"] == entry and s["faces"] == 3
    assert s["bicubic"]["psnr"] > s16["bicubic"]["psnr"] + 2 and s["model"]["psnr"] > s16["model"]["psnr"] + 2


def test_eval_errors(tmp_path: Path, weights: Path, capsys):
    from pipeline.cli import main

    assert main(["lab", "eval", "--faces", str(tmp_path / "missing"), "--weights", str(weights)]) == 2
    assert "not found" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    cv2.imwrite(str(empty / "a.png"), np.zeros((64, 64, 3), np.uint8))
    assert main(["lab", "eval", "--faces", str(empty), "--weights", str(weights), "--models", str(MODELS)]) == 2
    assert "no faces found" in capsys.readouterr().err
