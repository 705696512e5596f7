"""`enhance-faces lab pack-video`: a `prepare-video` cache cut down to a size that travels (a GPU machine takes 64 MiB).

Whole sequences are kept (track fusion trains on consecutive frames), drawn at random with a chance
proportional to their length, so the packed set keeps the full cache's mix of clip and still frames, until
the byte budget is spent. What takes the room is stored compressed: the low-res inputs as lossless WebP
(exactly the pipeline's pixels, ~3× smaller than raw), the 128 px targets as the cache's JPEG bytes, the
attention maps as JPEG q90 (mean error ~1/255). `SequenceSet` reads both layouts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ...core.errors import InputError
from ...core.geometry import ENTRIES

_LOG = logging.getLogger(__name__)


LOSSLESS = [cv2.IMWRITE_WEBP_QUALITY, 101]  # WebP quality above 100 is lossless
ATTENTION_QUALITY = 90


def _blobs(images: list[np.ndarray], ext: str, params: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Images encoded one by one → (concatenated bytes, offsets with a trailing end)."""
    enc = [cv2.imencode(ext, im, params)[1].ravel() for im in images]
    off = np.cumsum([0] + [len(b) for b in enc]).astype(np.int64)
    return (np.concatenate(enc) if enc else np.zeros(0, np.uint8)), off


def pack_video(src: Path, out: Path, max_mb: float, seed: int = 0, log: Callable[[str], None] = _LOG.info) -> dict:
    """Write `out` (≤ `max_mb` MB) from the cache `src`; returns counts."""
    if not src.is_file():
        raise InputError(f"video training cache not found: {src} (run `prepare-video` first)")
    z = np.load(src, allow_pickle=False)
    if "lr_webp" in z.files:
        raise InputError(f"{src} is already packed")
    seq, entry, lr_row = z["seq"], z["entry"].astype(int), z["lr_row"]
    hr_blob, hr_off, att = z["hr_jpeg"], z["hr_offset"], z["attention"]
    lr_all = {e: z[f"lr{e}"] for e in ENTRIES}

    def lr(i: int) -> np.ndarray:
        return lr_all[int(entry[i])][lr_row[i]]

    # bytes per frame, measured on a sample, to pick sequences against the budget before encoding all
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(seq), min(300, len(seq)), replace=False)
    per_frame = np.mean([len(cv2.imencode(".webp", lr(i), LOSSLESS)[1])
                         + len(cv2.imencode(".jpg", att[i], [cv2.IMWRITE_JPEG_QUALITY, ATTENTION_QUALITY])[1])
                         + hr_off[i + 1] - hr_off[i] + 40 for i in sample])
    ids, starts, counts = np.unique(seq, return_index=True, return_counts=True)
    keys = rng.random(len(ids)) ** (1.0 / counts)  # weighted sampling without replacement (Efraimidis–Spirakis)
    budget = max_mb * 1e6 * 0.97  # npz headers and the estimate's error
    keep, used = [], 0.0
    for k in np.argsort(-keys):
        cost = counts[k] * per_frame
        if used + cost > budget:
            continue
        keep.append(k)
        used += cost
    if not keep:
        raise InputError(f"--max-mb {max_mb} holds no sequence of {src}")
    rows = np.concatenate([np.flatnonzero(seq == ids[k]) for k in sorted(keep)])
    lr_bytes, lr_off = _blobs([lr(i) for i in rows], ".webp", LOSSLESS)
    att_bytes, att_off = _blobs([att[i] for i in rows], ".jpg", [cv2.IMWRITE_JPEG_QUALITY, ATTENTION_QUALITY])
    hr_parts = [hr_blob[hr_off[i] : hr_off[i + 1]] for i in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, seq=seq[rows], frame=z["frame"][rows], entry=z["entry"][rows], face_px=z["face_px"][rows],
             hr_jpeg=np.concatenate(hr_parts), hr_offset=np.cumsum([0] + [len(p) for p in hr_parts]).astype(np.int64),
             lr_webp=lr_bytes, lr_offset=lr_off, att_jpeg=att_bytes, att_offset=att_off)
    res = {"frames": len(rows), "of_frames": len(seq), "sequences": len(keep), "of_sequences": len(ids),
           "mb": out.stat().st_size / 1e6}
    log(f"{out}: {res['frames']} of {res['of_frames']} frames, {res['sequences']} of {res['of_sequences']} "
        f"sequences, {res['mb']:.1f} MB")
    return res
