"""`prepare`: detect and align the face crops with the pipeline's own detector and aligner, cache them.

For each split it writes `OUT/<split>/<name>.jpg` (the canonical 128×128 aligned crop, BGR JPEG) and
`OUT/<split>.npz` holding the file names, identities and the PFSR attention maps of the faces
(max over the 68 FAN heatmaps at 64×64, uint8), so training never has to run the FAN on targets.
Photos with no face found are reported and skipped.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ...core.config import DetectConfig
from ...core.errors import InputError
from ...core.geometry import CROP, similarity
from ...core.models import find_model
from ...stages.align import warp
from ...stages.detect import Detector
from .losses import attention_map, load_fan

_LOG = logging.getLogger(__name__)


IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"face folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT)


def align_largest(detector: Detector, image: np.ndarray) -> np.ndarray | None:
    """The canonical 128 crop of the largest face, exactly as the pipeline's aligner samples it."""
    faces = detector(image)
    if not faces:
        return None
    return warp(image, similarity(faces[0].kps), CROP)


def read_identities(faces_root: Path) -> dict[str, str]:
    ids: dict[str, str] = {}
    f = faces_root / "identities.csv"
    if f.is_file():
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                ids[Path(row["file"]).name] = row["identity"]
    return ids


def prepare(
    faces_root: Path,
    out: Path,
    models_dir: str | None,
    splits: tuple[str, ...] = ("train", "val"),
    limit: int = 0,
    quality: int = 95,
    det_size: int = 320,
    log=_LOG.info,
) -> dict[str, int]:
    detector = Detector(DetectConfig(input_size=det_size, small_faces=0.0), models_dir)  # one large face a photo
    fan = load_fan(find_model("fan68_compressed.pth", models_dir))
    ids = read_identities(faces_root)
    counts: dict[str, int] = {}
    for split in splits:
        paths = list_images(faces_root / split)
        if limit:
            paths = paths[:limit]
        dst = out / split
        dst.mkdir(parents=True, exist_ok=True)
        names, idents, atts, skipped = [], [], [], []
        batch_x, t0 = [], time.time()

        def flush() -> None:
            if batch_x:
                x = torch.from_numpy(np.stack(batch_x)).permute(0, 3, 1, 2).float() / 127.5 - 1
                atts.append((attention_map(fan, x).numpy() * 255).round().astype(np.uint8))
                batch_x.clear()

        for i, p in enumerate(paths):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            crop = None if img is None else align_largest(detector, img)
            if crop is None:
                skipped.append(p.name)
                log(f"  {split}/{p.name}: {'unreadable' if img is None else 'no face found'}, skipped")
                continue
            name = p.stem + ".jpg"
            cv2.imwrite(str(dst / name), crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
            # the attention map is computed from the cached (JPEG) crop, i.e. from what training reads
            cached = cv2.imread(str(dst / name))
            batch_x.append(cached[:, :, ::-1].copy())
            names.append(name)
            idents.append(ids.get(p.name, ""))
            if len(batch_x) == 64:
                flush()
            if (i + 1) % 500 == 0:
                log(f"  {split}: {i + 1}/{len(paths)} ({(i + 1) / (time.time() - t0):.1f} img/s)")
        flush()
        att = np.concatenate(atts) if atts else np.zeros((0, 64, 64), np.uint8)
        np.savez_compressed(out / f"{split}.npz", names=np.array(names), identities=np.array(idents), attention=att)
        counts[split] = len(names)
        size = sum(f.stat().st_size for f in dst.iterdir()) / 1e6
        log(f"{split}: {len(names)} faces cached in {dst} ({size:.1f} MB JPEG), {len(skipped)} skipped")
    return counts
