"""Prepared faces in memory and deterministic batches of (LR, HR, attention) made on the fly.

A batch is a pure function of (seed, step): resuming a run replays exactly the data it would have seen.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ...core.errors import InputError
from ...core.geometry import CROP, ENTRIES
from .degrade import DegradeConfig, clean, degrade


class FaceSet:
    """All cached 128 px crops of one split (RGB uint8) and their 64×64 attention maps (uint8)."""

    def __init__(self, root: str | Path, split: str, limit: int = 0) -> None:
        root = Path(root)
        index = root / f"{split}.npz"
        if not index.is_file():
            raise InputError(f"prepared faces not found: {index} (run `prepare` first)")
        z = np.load(index, allow_pickle=False)
        names = [str(n) for n in z["names"]]
        att = z["attention"]
        if limit:
            names, att = names[:limit], att[:limit]
        if not names:
            raise InputError(f"no prepared faces in {index}")
        imgs = []
        for n in names:
            img = cv2.imread(str(root / split / n), cv2.IMREAD_COLOR)
            if img is None or img.shape != (CROP, CROP, 3):
                raise InputError(f"bad prepared face {root / split / n}")
            imgs.append(img[:, :, ::-1])
        self.images = np.ascontiguousarray(np.stack(imgs))  # (N,128,128,3) RGB
        self.attention = np.ascontiguousarray(att)  # (N,64,64) uint8
        self.names = names

    def __len__(self) -> int:
        return len(self.names)


class SequenceSet:
    """Frames from `prepare-video` (pipeline-cut low-res inputs, 128 px targets, attention maps), RGB in memory.

    Several caches are read as one: a cache made later for added people joins the one made before without
    preparing that again; sequence numbers are renumbered so each cache's sequences stay apart.
    """

    def __init__(self, path: str | Path | list[str | Path], limit: int = 0) -> None:
        parts = [_load_sequences(Path(p), limit) for p in ([path] if isinstance(path, (str, Path)) else path)]
        if not parts:
            raise InputError("no video training cache given")
        seq_offset, row_offset = 0, {e: 0 for e in ENTRIES}
        for part in parts:
            part["seq"] = part["seq"].astype(np.int64) + seq_offset
            seq_offset = int(part["seq"].max()) + 1 if len(part["seq"]) else seq_offset
            rows = part["lr_row"].astype(np.int64)
            for e in ENTRIES:
                rows[part["entry"] == e] += row_offset[e]
                row_offset[e] += len(part["lr"][e])
            part["lr_row"] = rows
        def joined(arrays: list[np.ndarray]) -> np.ndarray:  # one cache's arrays as they are: no copy of its frames
            return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

        self.entry, self.seq, self.frame, self.face_px, self.images, self.attention, self.lr_row = (
            joined([q[k] for q in parts]) for k in ("entry", "seq", "frame", "face_px", "images", "attention", "lr_row"))
        self.lr = {e: joined([q["lr"][e] for q in parts]) for e in ENTRIES}
        self.by_entry = {e: np.flatnonzero(self.entry == e) for e in ENTRIES}
        self.index = {(int(q), int(f)): i for i, (q, f) in enumerate(zip(self.seq, self.frame))}

    def window(self, i: int, k: int, centred: bool) -> list[int]:
        """Up to k−1 other frames of i's sequence at i's entry size, nearest first: centred on i (files) or
        before it only (live cameras)."""
        q, f, e = int(self.seq[i]), int(self.frame[i]), int(self.entry[i])
        offsets = sorted(range(-(k - 1), k), key=lambda d: (abs(d), d)) if centred else range(-1, -k, -1)
        out = []
        for d in offsets:
            if d == 0 or (centred and abs(d) > k // 2):
                continue
            j = self.index.get((q, f + d))
            if j is not None and self.entry[j] == e:
                out.append(j)
            if len(out) == k - 1:
                break
        return out

    def __len__(self) -> int:
        return len(self.entry)

    def input(self, i: int) -> np.ndarray:
        """The low-res input of frame i (RGB, at its entry size)."""
        return self.lr[int(self.entry[i])][self.lr_row[i]]


def _load_sequences(path: Path, limit: int) -> dict:
    """One `prepare-video` or `pack-video` cache as arrays: the first `limit` frames (0: all)."""
    if not path.is_file():
        raise InputError(f"video training cache not found: {path} (run `prepare-video` first)")
    z = np.load(path, allow_pickle=False)
    n = len(z["entry"]) if not limit else min(limit, len(z["entry"]))
    out: dict = {"entry": z["entry"][:n].astype(int), "seq": z["seq"][:n], "frame": z["frame"][:n],
                 "face_px": z["face_px"][:n]}
    blob, off = z["hr_jpeg"], z["hr_offset"]
    out["images"] = np.stack([cv2.imdecode(blob[off[i] : off[i + 1]], cv2.IMREAD_COLOR)[:, :, ::-1] for i in range(n)])
    if "lr_webp" in z.files:  # `pack-video`: inputs and attention as compressed images, one per frame
        lrs = _decode(z["lr_webp"], z["lr_offset"], n, cv2.IMREAD_COLOR)
        out["lr_row"], out["lr"] = np.zeros(n, np.int64), {}
        for e in ENTRIES:
            idx = np.flatnonzero(out["entry"] == e)
            out["lr_row"][idx] = np.arange(len(idx))
            out["lr"][e] = (np.stack([lrs[i][..., ::-1] for i in idx]) if len(idx)
                            else np.zeros((0, e, e, 3), np.uint8))
        out["attention"] = np.stack(_decode(z["att_jpeg"], z["att_offset"], n, cv2.IMREAD_GRAYSCALE))
    else:
        out["lr_row"] = z["lr_row"][:n]
        out["lr"] = {e: np.ascontiguousarray(z[f"lr{e}"][..., ::-1]) for e in ENTRIES}
        out["attention"] = np.ascontiguousarray(z["attention"][:n])
    return out


def _decode(blob: np.ndarray, off: np.ndarray, n: int, flags: int) -> list[np.ndarray]:
    return [cv2.imdecode(blob[off[i] : off[i + 1]], flags) for i in range(n)]


def to_tensor(rgb_u8: np.ndarray) -> torch.Tensor:
    """(N,H,W,3) or (H,W,3) uint8 RGB → float (N,3,H,W) in [-1,1]."""
    a = rgb_u8[None] if rgb_u8.ndim == 3 else rgb_u8
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """float (N,3,H,W) in [-1,1] → (N,H,W,3) uint8 RGB."""
    return ((t.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def make_batch(
    faces: FaceSet,
    seed: int,
    step: int,
    batch: int,
    entry: int,
    dcfg: DegradeConfig | None = None,
    degrade_p: float = 1.0,
    video: SequenceSet | None = None,
    video_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lr (B,3,e,e), hr (B,3,128,128), att (B,64,64) in [0,1]) for one training step, flips included.

    With `video`, a `video_p` share of the batch are frames made the way the pipeline sees faces (their
    inputs are used as cut; only a flip is added), the rest stills through the degradation chain.
    """
    rng = np.random.default_rng([seed, step])
    n_video = 0
    if video is not None and video_p > 0 and len(video.by_entry[entry]):
        n_video = int(rng.binomial(batch, video_p))
    idx = rng.integers(0, len(faces), size=batch - n_video)
    hrs, lrs, atts = [], [], []
    for i in (rng.choice(video.by_entry[entry], n_video) if n_video else []):
        hr, lr, att = video.images[i], video.input(i), video.attention[i]
        if rng.random() < 0.5:
            hr, lr, att = hr[:, ::-1], lr[:, ::-1], att[:, ::-1]
        hrs.append(np.ascontiguousarray(hr))
        lrs.append(np.ascontiguousarray(lr))
        atts.append(np.ascontiguousarray(att))
    for i in idx:
        hr, att = faces.images[i], faces.attention[i]
        if rng.random() < 0.5:
            hr, att = hr[:, ::-1], att[:, ::-1]
        hr = np.ascontiguousarray(hr)
        lr = degrade(hr, entry, rng, dcfg) if rng.random() < degrade_p else clean(hr, entry)
        hrs.append(hr)
        lrs.append(lr)
        atts.append(np.ascontiguousarray(att))
    att_t = torch.from_numpy(np.stack(atts)).float().div(255.0)
    return to_tensor(np.stack(lrs)), to_tensor(np.stack(hrs)), att_t


def make_fusion_batch(
    faces: FaceSet,
    seed: int,
    step: int,
    batch: int,
    entry: int,
    k: int,
    video: SequenceSet,
    video_p: float,
    dcfg: DegradeConfig | None = None,
    degrade_p: float = 1.0,
    p_centred: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lr (B,k,3,e,e) target first, valid (B,k), hr (B,3,128,128), att (B,64,64)) for track fusion.

    Video samples carry up to k−1 neighbours of their sequence (centred or past-only windows, and a random
    number of them dropped, so every track length is seen); stills are one-frame tracks.
    """
    rng = np.random.default_rng([seed, step, 11])
    n_video = int(rng.binomial(batch, video_p)) if len(video.by_entry[entry]) else 0
    lrs = np.zeros((batch, k, entry, entry, 3), np.uint8)
    valid = np.zeros((batch, k), np.float32)
    hrs, atts = [], []
    for b, i in enumerate(rng.choice(video.by_entry[entry], n_video) if n_video else []):
        others = video.window(int(i), k, bool(rng.random() < p_centred))
        others = others[: int(rng.integers(0, len(others) + 1))]
        flip = rng.random() < 0.5
        for j, idx in enumerate([int(i)] + others):
            lr = video.input(idx)
            lrs[b, j] = lr[:, ::-1] if flip else lr
            valid[b, j] = 1.0
        hr, att = video.images[i], video.attention[i]
        hrs.append(np.ascontiguousarray(hr[:, ::-1] if flip else hr))
        atts.append(np.ascontiguousarray(att[:, ::-1] if flip else att))
    for b in range(n_video, batch):
        i = int(rng.integers(0, len(faces)))
        hr, att = faces.images[i], faces.attention[i]
        if rng.random() < 0.5:
            hr, att = hr[:, ::-1], att[:, ::-1]
        hr = np.ascontiguousarray(hr)
        lrs[b, 0] = degrade(hr, entry, rng, dcfg) if rng.random() < degrade_p else clean(hr, entry)
        valid[b, 0] = 1.0
        hrs.append(hr)
        atts.append(np.ascontiguousarray(att))
    x = torch.from_numpy(lrs).permute(0, 1, 4, 2, 3).float().div(127.5).sub(1.0)
    att_t = torch.from_numpy(np.stack(atts)).float().div(255.0)
    return x, torch.from_numpy(valid), to_tensor(np.stack(hrs)), att_t
