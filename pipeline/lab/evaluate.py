"""`eval`: score bicubic and the generator side by side on a folder of face photos.

Each photo goes through the pipeline's own detector and aligner (largest face → canonical 128 crop,
the "original"); the low-res input is that crop area-downscaled to the entry size (`clean`) or put
through a fixed-seed degradation chain (`cctv`). Scores per image: PSNR (RGB, 0–255), SSIM, MS-SSIM,
identity cosine to the original (MobileFaceNet, never a training loss) and 68-point landmark error
(PFLD, normalised by the original's outer-eye-corner distance). Writes a per-image CSV, a sample sheet
PNG (LR | bicubic | model | original) and optionally a JSON summary. Photos with no face are reported
and skipped.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from ..core.errors import InputError
from ..core.geometry import ARCFACE_112, CROP, TEMPLATE, similarity
from ..core.models import find_model
from ..stages.align import warp

_LOG = logging.getLogger(__name__)


if TYPE_CHECKING:
    from ..stages.enhance.backends import Backend

METRICS = ("psnr", "ssim", "msssim", "id_cos", "lm_nme")
LABELS = {"psnr": "PSNR dB", "ssim": "SSIM", "msssim": "MS-SSIM", "id_cos": "ID cos", "lm_nme": "LM NME"}
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class IdentityScorer:
    """MobileFaceNet 128-D embeddings of canonical 128 crops (BGR), for cosine to the original."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.name = self.sess.get_inputs()[0].name
        # the canonical crop's 5 points are TEMPLATE by construction: one fixed warp to ArcFace's 112 layout
        self.m = similarity(TEMPLATE, ARCFACE_112)

    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        x = np.stack([cv2.warpAffine(c, self.m, (112, 112), borderValue=0.0) for c in crops_bgr]).astype(np.float32)
        x = (x - 127.5) / 127.5
        e = self.sess.run(None, {self.name: x.transpose(0, 3, 1, 2)})[0]
        return e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-8)


class LandmarkScorer:
    """PFLD 68 landmarks in crop pixels, from a fixed box (the detector box mapped into the crop, ×1.1)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.name = self.sess.get_inputs()[0].name

    def __call__(self, crop_bgr: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        x1, y1, x2, y2 = box
        cx, cy, s = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.1
        x0, y0 = cx - s / 2, cy - s / 2
        m = np.array([[112 / s, 0, -x0 * 112 / s], [0, 112 / s, -y0 * 112 / s]], np.float32)
        patch = cv2.warpAffine(crop_bgr, m, (112, 112), borderMode=cv2.BORDER_CONSTANT)
        x = (patch[:, :, ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        pts = self.sess.run(None, {self.name: x})[0].reshape(-1, 2)[:68]
        return pts * s + np.array([x0, y0], np.float32)


def nme(pred: np.ndarray, ref: np.ndarray) -> float:
    iod = float(np.linalg.norm(ref[36] - ref[45])) + 1e-6
    return float(np.linalg.norm(pred - ref, axis=1).mean() / iod)


def crop_box(box: np.ndarray, m: np.ndarray) -> tuple[float, float, float, float]:
    """Detector box mapped into the canonical crop (centre mapped, side scaled)."""
    c = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.0])
    cx, cy = m @ c
    s = float(np.sqrt(abs(np.linalg.det(m[:, :2])))) * max(box[2] - box[0], box[3] - box[1])
    return cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2


def ssim_scores(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image SSIM and MS-SSIM of uint8 batches (N,H,W,3); MS-SSIM at 128 px uses a 7-px window."""
    from pytorch_msssim import ms_ssim, ssim

    ta = torch.from_numpy(a).permute(0, 3, 1, 2).float()
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).float()
    s = ssim(ta, tb, data_range=255.0, size_average=False)
    ms = ms_ssim(ta, tb, data_range=255.0, size_average=False, win_size=7)
    return s.numpy(), ms.numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def make_lr(crop: np.ndarray, entry: int, mode: str, seed: int, index: int) -> np.ndarray:
    from .train.degrade import DegradeConfig, clean, degrade

    if mode == "clean":
        return clean(crop, entry)
    return degrade(crop, entry, np.random.default_rng([seed, index]), DegradeConfig(p_clean=0.0))


def enhance(backend: Backend, lrs_bgr: list[np.ndarray], batch: int = 32, mirror: bool = False) -> list[np.ndarray]:
    """The generator's raw outputs (128 BGR) for low-res crops of one size, in batches, through `backend`
    (`mirror`: as `enhance.mirror` runs it)."""
    from ..stages.enhance.pixels import mirrored

    run = mirrored(backend.run) if mirror else backend.run
    return [im for i in range(0, len(lrs_bgr), batch) for im in run(np.stack(lrs_bgr[i : i + batch]))]


def sample_sheet(rows: list[tuple[np.ndarray, ...]], path: Path) -> None:
    """LR (nearest, upscaled) | bicubic | model | original, one face per row, with a header strip."""
    tiles = []
    for lr, bic, sr, hr in rows:
        lr_big = cv2.resize(lr, (CROP, CROP), interpolation=cv2.INTER_NEAREST)
        tiles.append(np.hstack([lr_big, bic, sr, hr]))
    header = np.full((20, CROP * 4, 3), 255, np.uint8)
    for i, t in enumerate(["LR input", "bicubic", "model", "original"]):
        cv2.putText(header, t, (i * CROP + 6, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), np.vstack([header] + tiles))


def evaluate(
    faces_dir: Path,
    entry: int = 16,
    mode: str = "clean",
    limit: int = 0,
    weights: str | None = None,
    models_dir: str | None = None,
    out_dir: Path | None = None,
    seed: int = 0,
    sheet: int = 8,
    log=_LOG.info,
    det_size: int = 320,
    strength: float | None = None,
    mirror: bool | None = None,
) -> dict:
    from ..core.config import DetectConfig, EnhanceConfig
    from ..stages.detect import Detector
    from ..stages.enhance.anchor import finish
    from ..stages.enhance.backends import TorchCPU
    from ..stages.enhance.generator import load_generator, trained_steps

    if not faces_dir.is_dir():
        raise InputError(f"face folder not found: {faces_dir}")
    photos = sorted(p for p in faces_dir.iterdir() if p.suffix.lower() in IMAGE_EXT)
    if limit:
        photos = photos[:limit]
    if not photos:
        raise InputError(f"no images in {faces_dir}")
    model, meta = load_generator(weights)
    backend = TorchCPU(model, precision=EnhanceConfig.cpu_precision)  # as the product runs it on this CPU
    # photos of single faces ~200 px across: a 320 input keeps them inside SCRFD's anchor range (as `prepare`)
    detector = Detector(DetectConfig(input_size=det_size, small_faces=0.0), models_dir)  # as `prepare` cut the faces
    ident = IdentityScorer(find_model("mobilefacenet_128d.onnx", models_dir))
    lms = LandmarkScorer(find_model("pfld.onnx", models_dir))

    names, crops, lrs, boxes, skipped = [], [], [], [], []
    for i, p in enumerate(photos):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            skipped.append((p.name, "unreadable"))
            log(f"{p.name}: unreadable image, skipped")
            continue
        found = detector(img)
        if not found:
            skipped.append((p.name, "no face found"))
            log(f"{p.name}: no face found, skipped")
            continue
        m = similarity(found[0].kps)
        crop = warp(img, m, CROP)
        names.append(p.name)
        crops.append(crop)
        lrs.append(make_lr(crop, entry, mode, seed, i))
        boxes.append(crop_box(found[0].box, m))
    if not names:
        raise InputError(f"no faces found in any of the {len(photos)} photos in {faces_dir}")

    bics = [cv2.resize(lr, (CROP, CROP), interpolation=cv2.INTER_CUBIC) for lr in lrs]
    t0 = time.time()  # generator time: the baseline's resizes above are not part of it
    # what the pipeline outputs: anchored, blended with the camera's crop (here the LR still is the camera)
    strength = EnhanceConfig.strength if strength is None else strength
    if mirror is None:  # as the product runs this entry
        from ..stages.enhance.pixels import mirror_entries

        mirror = entry in mirror_entries(EnhanceConfig().mirror)
    srs = [finish(s, lr, b, strength) for s, lr, b in zip(enhance(backend, lrs, mirror=mirror), lrs, bics)]
    gen_s = time.time() - t0
    hr = np.stack(crops)
    scores: dict[str, dict[str, np.ndarray]] = {}
    e_hr = ident.embed(crops)
    for method, outs in (("bicubic", bics), ("model", srs)):
        arr = np.stack(outs)
        s, ms = ssim_scores(arr[..., ::-1].copy(), hr[..., ::-1].copy())
        emb = ident.embed(outs)
        lm = [nme(lms(o, b), lms(h, b)) for o, h, b in zip(outs, crops, boxes)]
        scores[method] = {
            "psnr": np.array([psnr(o, h) for o, h in zip(outs, crops)]),
            "ssim": s,
            "msssim": ms,
            "id_cos": (emb * e_hr).sum(1),
            "lm_nme": np.array(lm),
        }
    summary = {
        "faces_dir": str(faces_dir),
        "entry": entry,
        "degrade": mode,
        "seed": seed,
        "faces": len(names),
        "skipped": [{"file": n, "reason": r} for n, r in skipped],
        "weights": meta.get("path"),
        "weights_steps": trained_steps(meta),
        "generator_ms_per_face": 1000 * gen_s / len(names),
        "generator": backend.describe(),
        "strength": strength,
        "mirror": mirror,
        "bicubic": {k: float(np.mean(v)) for k, v in scores["bicubic"].items()},
        "model": {k: float(np.mean(v)) for k, v in scores["model"].items()},
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "per_image.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "entry", "degrade"] + [f"{meth}_{k}" for meth in ("bicubic", "model") for k in METRICS])
            for i, n in enumerate(names):
                w.writerow([n, entry, mode] + [f"{scores[meth][k][i]:.5f}" for meth in ("bicubic", "model") for k in METRICS])
            for n, r in skipped:
                w.writerow([n, entry, mode] + [r] + [""] * (2 * len(METRICS) - 1))
        k = min(sheet, len(names))
        sample_sheet([(lrs[i], bics[i], srs[i], crops[i]) for i in range(k)], out_dir / "samples.png")
        summary["csv"] = str(out_dir / "per_image.csv")
        summary["sheet"] = str(out_dir / "samples.png")
    return summary


def format_table(summary: dict) -> str:
    head = f"{summary['degrade']} {summary['entry']}→128 on {summary['faces']} faces"
    lines = [head, f"{'':10s}" + "".join(f"{LABELS[k]:>10s}" for k in METRICS)]
    for meth in ("bicubic", "model"):
        fmt = {"psnr": "{:10.2f}", "ssim": "{:10.4f}", "msssim": "{:10.4f}", "id_cos": "{:10.4f}", "lm_nme": "{:10.4f}"}
        lines.append(f"{meth:10s}" + "".join(fmt[k].format(summary[meth][k]) for k in METRICS))
    d = {k: summary["model"][k] - summary["bicubic"][k] for k in METRICS}
    lines.append(f"{'Δ':10s}" + "".join(f"{d[k]:+10.4f}" if k != "psnr" else f"{d[k]:+10.2f}" for k in METRICS))
    if summary["skipped"]:
        lines.append(f"skipped {len(summary['skipped'])}: " + ", ".join(f"{s['file']} ({s['reason']})" for s in summary["skipped"]))
    return "\n".join(lines)
