"""Smoothing a track's enhanced faces over time, and what a better camera would give: two questions about
eval-video's temporal error, answered by `probe-track`.

Temporal error scores how a track's outputs change from frame to frame against how the truth changes. A
recursive filter that carries the previous output forward (moved through the two crop matrices, then by
optical flow between the camera's crops) where it agrees with the new one damps flicker the camera's
noise and the generator add. The reference cameras say what is reachable at all: the truth itself, seen by
a camera without a codec that resolves the crop's source pixels (× a factor) and resized back, changes
from frame to frame like a reconstruction of that fidelity would.
"""

from __future__ import annotations

from collections import defaultdict

import cv2
import numpy as np

from ..core.geometry import CROP, source_span
from .eval_video import Obs, psnr, temporal_error
from .truth import compose

AGREEMENT_BLUR = 2.0  # σ (crop px) of the difference map that decides where the past output is trusted
REFERENCE_FACTORS = (1.0, 1.5)  # reference cameras: the crop's source pixels × these, without a codec


def follow(image: np.ndarray, m_from: np.ndarray, m_to: np.ndarray) -> np.ndarray:
    """A crop cut through source→crop matrix `m_from`, moved into the crop of `m_to` (float32)."""
    between = compose(m_to, cv2.invertAffineTransform(m_from))
    return cv2.warpAffine(image.astype(np.float32), between, (CROP, CROP), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _grey(x: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(x + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)


def flow_onto(image: np.ndarray, guide: np.ndarray, target: np.ndarray, dis: cv2.DISOpticalFlow) -> np.ndarray:
    """`image` moved by the DIS optical flow that takes `guide` onto `target` (all in one crop frame)."""
    f = dis.calc(_grey(target), _grey(guide), None)
    gx, gy = np.meshgrid(np.arange(CROP, dtype=np.float32), np.arange(CROP, dtype=np.float32))
    return cv2.remap(image, gx + f[..., 0], gy + f[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def recursive_filter(track: list[Obs], alpha: float, tau: float, reverse: bool = False) -> dict[int, np.ndarray]:
    """Each observation's output blended with the filtered output of the frame before (after, `reverse`),
    moved onto it, by alpha·exp(−(d/tau)²) where d is their blurred difference: the past counts where it
    agrees, the new frame wins where the face changed. A gap in the track starts afresh. float32 per frame."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    out: dict[int, np.ndarray] = {}
    prev: Obs | None = None
    for o in sorted(track, key=lambda o: o.frame, reverse=reverse):
        x = o.model.astype(np.float32)
        if prev is not None and abs(prev.frame - o.frame) == 1:
            carried = flow_onto(follow(out[prev.frame], prev.matrix, o.matrix),
                                follow(prev.bicubic, prev.matrix, o.matrix), o.bicubic.astype(np.float32), dis)
            d = cv2.GaussianBlur(np.abs(x - carried).mean(2), (0, 0), AGREEMENT_BLUR)
            x = x + (alpha * np.exp(-((d / tau) ** 2)))[..., None] * (carried - x)
        out[o.frame] = x
        prev = o
    return out


def reference_camera(o: Obs, factor: float) -> np.ndarray:
    """The truth as a codec-free camera resolving the crop's source pixels × `factor` would show it, resized
    back to the crop (bicubic): what a reconstruction as faithful as that camera would output."""
    s = max(2, int(round(source_span(o.matrix) * factor)))
    small = cv2.resize(o.truth, (s, s), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (CROP, CROP), interpolation=cv2.INTER_CUBIC)


def temporal_probe(obs: list[Obs], embed, alpha: float, tau: float) -> dict:
    """PSNR over bicubic, identity cosine and temporal error of the pipeline's outputs, the filter (past only,
    as a live camera allows, and both ways, as a file allows) and the reference cameras; `obs` carry
    `model`, `truth` and `bicubic`."""
    tracks: dict[int, list[Obs]] = defaultdict(list)
    for o in obs:
        tracks[o.track].append(o)
    past, both = {}, {}
    for tid, track in tracks.items():
        fwd, bwd = recursive_filter(track, alpha, tau), recursive_filter(track, alpha, tau, reverse=True)
        for f in fwd:
            past[(tid, f)], both[(tid, f)] = fwd[f], (fwd[f] + bwd[f]) / 2
    methods = {"bicubic": lambda o: o.bicubic, "single": lambda o: o.model,
               "filter_past": lambda o: past[(o.track, o.frame)], "filter_two_way": lambda o: both[(o.track, o.frame)]}
    for k in REFERENCE_FACTORS:
        ref = {(o.track, o.frame): reference_camera(o, k) for o in obs}
        methods[f"camera_{k:g}x"] = lambda o, ref=ref: ref[(o.track, o.frame)]
    e_truth = embed([o.truth for o in obs])
    bicubic_psnr = np.mean([psnr(o.bicubic, o.truth) for o in obs])
    result: dict = {"alpha": alpha, "tau": tau}
    for name, get in methods.items():
        images = [np.clip(get(o) + 0.5, 0, 255).astype(np.uint8) for o in obs]
        te, result["pairs"] = temporal_error(obs, get)  # the same pairs for every method
        result[name] = {"delta_psnr": float(np.mean([psnr(x, o.truth) for x, o in zip(images, obs)]) - bicubic_psnr),
                        "id_cos": float(np.mean((embed(images) * e_truth).sum(1))), "temporal": te}
    return result
