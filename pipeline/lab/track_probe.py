"""`probe-track`: how much a track's other frames hold that one frame does not, measured without training.

Track fusion rests on the neighbours of an observation showing detail it lacks (sub-pixel shifts,
independent noise). Before a network is asked to find that detail, classical estimators look for it in
an `eval-video` folder, through the same generator, finish and truth as eval-video:

- registered average (burst photography's merge, which wins noise): the K−1 nearest observations of the
  track are registered to the target's low-res input (ECC, affine, on 4× upsampled grey) and averaged with it;
- back-projection (multi-frame super-resolution, which wins resolution): the camera pixels of the same K
  frames, placed through their registrations, reconstruct the target's input grid by iterative
  back-projection; with one frame it is the control, so what the other frames add is the difference;
- smoothed geometry: each crop matrix averaged over the track (Gaussian in frames; past-only for live
  cameras), so one frame's landmark noise does not move its crop;
- temporal filtering (`track_filter`, on every observation): the pipeline's outputs carried forward where
  they agree, scored with temporal error beside reference cameras without a codec.

Also: how far the camera's low-res input is from the truth shrunk to the same size, and how far it would
be without the codec (the frame shrunk as the camera's was, cut the same way): what resolution lost, and
what compression added; how much of that a linear filter fitted to the clip itself wins back (an oracle);
and that codec-free input resized (`uncoded_bicubic`) and enhanced
(`uncoded_single`): what the generator could do if the camera did not compress. `single` re-runs the
generator on the pipeline's own cut and must match eval-video; the same output finished at other blend
strengths (`strength_<s>`), and at the one an oracle that sees the truth picks per tile (`strength_oracle`),
bound what any choice of `enhance.strength`, global or per tile, can win.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import InputError
from ..core.geometry import CROP, resize_matrix, source_span
from ..stages.align import warp
from .eval_video import Obs, psnr, read_run
from .track_filter import temporal_probe
from .truth import bicubic_crop, compose, plan_shrink, read_frames, yuv420_round_trip

_LOG = logging.getLogger(__name__)


UPSAMPLE = 4  # registration runs on the input upsampled this much: sub-pixel shifts of a 16–64 px face
BACK_PROJECTIONS = 10  # iterations of back-projection (more sharpen noise, not detail)
ORACLE_RADIUS, ORACLE_RIDGE = 4, 10.0  # the codec oracle's window (9×9) and ridge weight
# the input at entry size against the truth shrunk to it: as coded, without the codec, without it but in 4:2:0
INPUT_SCORES = ("lr_vs_truth_psnr", "uncoded_vs_truth_psnr", "yuv420_vs_truth_psnr")
STRENGTHS = (0.4, 0.8, 1.0)  # blend strengths scored beside the product's own (`enhance.strength`)
SMOOTHING = (0.6, 4.0)  # the temporal filter's (alpha, tau): neutral in PSNR on the held-out clips (engines/MODEL_CARD.md)


def fit(moving: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Affine ECC fit (2×3) taking `target`'s pixel coordinates to `moving`'s (both e×e BGR); None when it fails."""
    grey = [cv2.resize(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY), None, fx=UPSAMPLE, fy=UPSAMPLE,
                       interpolation=cv2.INTER_CUBIC).astype(np.float32) for x in (target, moving)]
    w = np.eye(2, 3, dtype=np.float32)
    try:
        _, w = cv2.findTransformECC(grey[0], grey[1], w, cv2.MOTION_AFFINE,
                                    (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5), None, 5)
    except cv2.error:
        return None
    w = w.astype(np.float64)
    w[:, 2] /= UPSAMPLE
    return w


def register(moving: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """`moving` (e×e BGR) warped onto `target` by an affine ECC fit, float32; None when ECC fails."""
    w = fit(moving, target)
    if w is None:
        return None
    e = target.shape[0]
    return cv2.warpAffine(moving.astype(np.float32), w, (e, e), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def camera_patch(frame: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The camera pixels under the crop of `m` (N,3 float64) and their centres' source coordinates (N,2)."""
    inverse = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0], [CROP - 1, 0], [0, CROP - 1], [CROP - 1, CROP - 1]], np.float64)
    corners = corners @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 3, frame.shape[1::-1])
    ys, xs = np.mgrid[y0:y1, x0:x1]
    coords = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    return frame[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64), coords


def _splat(values: np.ndarray, at: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Values (N,3) spread bilinearly onto a size×size grid at positions `at` (N,2): sums and weights."""
    num, den = np.zeros((size, size, values.shape[1])), np.zeros((size, size))
    base = np.floor(at).astype(int)
    frac = at - base
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        w = np.abs(1 - dx - frac[:, 0]) * np.abs(1 - dy - frac[:, 1])
        x, y = base[:, 0] + dx, base[:, 1] + dy
        inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
        np.add.at(den, (y[inside], x[inside]), w[inside])
        np.add.at(num, (y[inside], x[inside]), w[inside, None] * values[inside])
    return num, den


def back_project(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], start: np.ndarray, spacing: float,
                 iterations: int = BACK_PROJECTIONS) -> np.ndarray:
    """Iterative back-projection (Irani & Peleg): the grid image whose simulated camera pixels match every
    frame's, starting from `start` (size×size BGR).

    `frames`: (pixels (N,3), source coordinates (N,2), 2×3 source → grid matrix) per frame. A camera pixel is
    modelled as the grid image blurred to the camera's pixel footprint (`spacing` grid px, a box's standard
    deviation) and sampled at its position."""
    size = start.shape[0]
    sigma = max(spacing / np.sqrt(12), 0.3)
    x = start.astype(np.float64)
    placed = [(pixels, coords @ m[:, :2].T + m[:, 2]) for pixels, coords, m in frames]
    for _ in range(iterations):
        seen = cv2.GaussianBlur(x, (0, 0), sigma).astype(np.float32)
        num, den = np.zeros_like(x), np.zeros(x.shape[:2])
        for pixels, at in placed:
            simulated = cv2.remap(seen, at[:, :1].astype(np.float32), at[:, 1:].astype(np.float32),
                                  cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).reshape(-1, 3)
            n, d = _splat(pixels - simulated, at, size)
            num, den = num + n, den + d
        num, den = cv2.GaussianBlur(num, (0, 0), sigma), cv2.GaussianBlur(den, (0, 0), sigma)
        x += np.where(den[..., None] > 1e-3, num / np.maximum(den, 1e-3)[..., None], 0.0)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def registered_average(target: np.ndarray, neighbours: list[np.ndarray]) -> np.ndarray:
    """The target input averaged with its registered neighbours (those ECC could fit), uint8."""
    acc = [target.astype(np.float32)] + [r for r in (register(n, target) for n in neighbours) if r is not None]
    return np.clip(np.mean(acc, 0) + 0.5, 0, 255).astype(np.uint8)


def oracle_strength(anchored: np.ndarray, crop: np.ndarray, truth: np.ndarray) -> float:
    """The blend strength (0–1) that brings this one tile closest to the truth (least squares). An oracle: no
    camera knows the truth, so it bounds what choosing `enhance.strength` per tile could win."""
    change = anchored.astype(np.float64) - crop
    wanted = truth.astype(np.float64) - crop
    return float(np.clip((wanted * change).sum() / max(float((change * change).sum()), 1e-9), 0.0, 1.0))


def _windows(img: np.ndarray, r: int = ORACLE_RADIUS) -> np.ndarray:
    """Every pixel's (2r+1)² neighbourhood (reflected at the border) as a row, plus a constant: (H·W, 3(2r+1)²+1)."""
    p = np.pad(img.astype(np.float32), ((r, r), (r, r), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    rows = np.lib.stride_tricks.sliding_window_view(p, (2 * r + 1, 2 * r + 1), axis=(0, 1)).reshape(h * w, -1)
    return np.hstack([rows, np.ones((h * w, 1), np.float32)])


def linear_restoration(triples: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """How much of the codec's loss a linear filter fitted to this very clip wins back (an oracle: no model
    trained elsewhere gets that fit). Ridge regression from each coded input pixel's neighbourhood to the
    codec-free input, fitted on every other target and scored on the rest against the truth at input size.
    Far below the codec-free figure, the loss is information the codec dropped, not artefacts to undo.
    Its two parts are scored apart: the mean colour shift alone (fitted on the same half; it undid the darkening
    of swscale's default conversion before `pipeline/yuv.py`, and wins nothing now), and the filter without it."""
    fit_on, test_on = triples[0::2], triples[1::2]
    if not test_on:
        return {}
    x = np.concatenate([_windows(coded) for coded, _, _ in fit_on]).astype(np.float64)
    y = np.concatenate([clean.reshape(-1, 3) for _, clean, _ in fit_on]).astype(np.float64)
    w = np.linalg.solve(x.T @ x + ORACLE_RIDGE * np.eye(x.shape[1]), x.T @ y)
    restored = [np.clip(_windows(coded) @ w, 0, 255).reshape(coded.shape) for coded, _, _ in test_on]
    shift = np.mean([u.mean((0, 1)) - c.mean((0, 1)) for c, u, _ in fit_on], 0)
    unshifted = [r - (r.mean((0, 1)) - c.mean((0, 1))) for r, (c, _, _) in zip(restored, test_on)]
    return {"entry": int(fit_on[0][0].shape[0]), "fitted": len(fit_on), "scored": len(test_on),
            "coded_psnr": float(np.mean([psnr(c, t) for c, _, t in test_on])),
            "restored_psnr": float(np.mean([psnr(r, t) for r, (_, _, t) in zip(restored, test_on)])),
            "shift_only_psnr": float(np.mean([psnr(np.clip(c + shift, 0, 255), t) for c, _, t in test_on])),
            "unshifted_psnr": float(np.mean([psnr(np.clip(r, 0, 255), t) for r, (_, _, t) in zip(unshifted, test_on)])),
            "uncoded_psnr": float(np.mean([psnr(u, t) for _, u, t in test_on]))}


def smoothed_matrices(obs: list[Obs], sigma: float, past_only: bool = False) -> dict[tuple[int, int], np.ndarray]:
    """Each observation's crop matrix averaged over its track with Gaussian weights in frames (±3σ)."""
    tracks: dict[int, list[Obs]] = defaultdict(list)
    for o in obs:
        tracks[o.track].append(o)
    out = {}
    for track in tracks.values():
        frames = np.array([o.frame for o in track], np.float64)
        mats = np.stack([o.matrix for o in track])
        for o in track:
            d = frames - o.frame
            w = np.exp(-0.5 * (d / sigma) ** 2) * (np.abs(d) <= 3 * sigma) * ((d <= 0) if past_only else 1.0)
            out[(o.track, o.frame)] = (w[:, None, None] * mats).sum(0) / w.sum()
    return out


class _Scorer:
    """Generator + the product's finish, scored against the truth (PSNR over bicubic, identity cosine)."""

    def __init__(self, weights: str | None, strength: float, identity, mirror: bool | list[int] = False) -> None:
        from ..stages.enhance.backends import TorchCPU
        from ..stages.enhance.generator import load_generator
        from ..stages.enhance.pixels import mirror_entries, mirrored

        model, self.info = load_generator(weights or None)
        self.run = mirrored(TorchCPU(model).run, mirror_entries(mirror))
        self.strength, self.identity = strength, identity

    def anchored(self, lr: np.ndarray) -> np.ndarray:
        """The generator's output anchored to the input's colours: the product's finish before its blend."""
        from ..stages.enhance.anchor import anchor

        return anchor(self.run(np.ascontiguousarray(lr[None]))[0], lr)

    def enhance(self, lr: np.ndarray, crop: np.ndarray) -> np.ndarray:
        from ..stages.enhance.anchor import blend

        return blend(self.anchored(lr), crop, self.strength)

    def score(self, rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
        """rows of (output, bicubic crop, truth) → mean ΔPSNR over bicubic and identity cosine of both."""
        out, bic, truth = (np.stack(x) for x in zip(*rows))
        e_truth = self.identity.embed(list(truth))
        return {"delta_psnr": float(np.mean([psnr(a, t) - psnr(b, t) for a, b, t in zip(out, bic, truth)])),
                "id_cos": float(np.mean((self.identity.embed(list(out)) * e_truth).sum(1))),
                "id_cos_bicubic": float(np.mean((self.identity.embed(list(bic)) * e_truth).sum(1))),
                "n": len(rows)}


def probe_clip(hr_path: Path, run_dir: Path, res: dict, scorer: _Scorer, windows: list[int],
               sigmas: list[float], every: int, smoothing: tuple[float, float] = SMOOTHING) -> dict:
    """All estimators on one eval-video clip × face size (every `every`-th observation is a target), and the
    temporal section (`track_filter`) on every observation."""
    from ..stages.enhance.anchor import blend

    obs = sorted((o for o in read_run(run_dir / "run") if o.lr is not None), key=lambda o: (o.track, o.frame))
    if not obs:
        return {"observations": 0}
    hr0 = next(read_frames(hr_path))
    shrink = plan_shrink(hr0.shape[1], hr0.shape[0], res["hr_face_px"], float(res["face_px"]))
    if np.abs(np.array(shrink.scale) - np.array(res["shrink"])).max() > 1e-6:
        raise InputError(f"{hr_path.name} is not the clip {run_dir} was made from")
    smooth = {f"smooth_{'past' if past else 'centred'}_{s:g}": smoothed_matrices(obs, s, past)
              for s in sigmas for past in (False, True)}
    by_frame: dict[int, list[Obs]] = defaultdict(list)
    for o in obs:
        by_frame[o.frame].append(o)
    cut: dict[tuple[int, int], np.ndarray] = {}  # the pipeline's own low-res cut, for every observation
    patch: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # its camera pixels and their positions
    rows: dict[str, list] = defaultdict(list)
    noise = []
    codec: dict[int, list] = defaultdict(list)  # per entry size: (coded cut, codec-free cut, truth at that size)
    targets = {(o.track, o.frame) for o in obs[::every]}
    for i, (hr, lr) in enumerate(zip(read_frames(hr_path), read_frames(run_dir / "camera.mp4"))):
        uncoded = converted = None  # this frame shrunk as the camera's was, before the codec; and converted to 4:2:0
        for o in by_frame.get(i, []):
            key, e = (o.track, o.frame), o.lr.shape[0]
            cut[key] = warp(lr, o.matrix, e)
            patch[key] = camera_patch(lr, o.matrix)
            o.truth, o.bicubic = shrink.truth(hr, o.matrix), bicubic_crop(lr, o.matrix)
            if key not in targets:
                continue
            crop, truth = o.bicubic, o.truth
            small_truth = cv2.resize(truth, (e, e), interpolation=cv2.INTER_AREA)
            uncoded = shrink.apply(hr) if uncoded is None else uncoded
            converted = yuv420_round_trip(uncoded) if converted is None else converted
            clean_cut, clean_crop = warp(uncoded, o.matrix, e), bicubic_crop(uncoded, o.matrix)
            noise.append((psnr(cut[key], small_truth), psnr(clean_cut, small_truth),
                          psnr(warp(converted, o.matrix, e), small_truth)))
            codec[e].append((cut[key], clean_cut, small_truth))
            # the same camera without its codec, scored against the coded camera's bicubic like the rest
            rows["uncoded_bicubic"].append((clean_crop, crop, truth))
            rows["uncoded_single"].append((scorer.enhance(clean_cut, clean_crop), crop, truth))
            anchored = scorer.anchored(cut[key])
            rows["single"].append((blend(anchored, crop, scorer.strength), crop, truth))
            for s in STRENGTHS:
                rows[f"strength_{s:g}"].append((blend(anchored, crop, s), crop, truth))
            rows["strength_oracle"].append((blend(anchored, crop, oracle_strength(anchored, crop, truth)), crop, truth))
            for name, mats in smooth.items():
                m = mats[key]
                m_crop = bicubic_crop(lr, m)
                rows[name].append((scorer.enhance(warp(lr, m, e), m_crop), m_crop, shrink.truth(hr, m)))
    by_key = {(o.track, o.frame): o for o in obs}
    for o in (o for o in obs if (o.track, o.frame) in targets and o.truth is not None):
        key, e = (o.track, o.frame), cut[(o.track, o.frame)].shape[0]
        # the nearest observations of the same entry size, alternating after/before the target
        near = sorted((t for t in cut if t[0] == o.track and t != key and cut[t].shape == cut[key].shape),
                      key=lambda t: (abs(t[1] - o.frame), t[1] < o.frame))[:max(windows, default=1) - 1]
        for k in windows:
            x = registered_average(cut[key], [cut[t] for t in near[:k - 1]])
            rows[f"average_{k}"].append((scorer.enhance(x, o.bicubic), o.bicubic, o.truth))
        fits = {t: fit(cut[t], cut[key]) for t in near}
        fits[key] = np.eye(2, 3)
        for k in (1, *windows):  # one frame is the control: the same reconstruction without the others
            frames = [(*patch[t], compose(cv2.invertAffineTransform(fits[t]), resize_matrix(by_key[t].matrix, e)))
                      for t in [key, *near[:k - 1]] if fits[t] is not None]
            x = back_project(frames, cut[key], e / source_span(o.matrix))
            rows[f"back_project_{k}"].append((scorer.enhance(x, o.bicubic), o.bicubic, o.truth))
    out = {name: scorer.score(r) for name, r in rows.items()}
    out["temporal"] = temporal_probe([o for o in obs if o.truth is not None], scorer.identity.embed, *smoothing)
    out.update(zip(INPUT_SCORES, (float(v) for v in np.mean(noise, 0))))
    out["codec_oracle"] = linear_restoration(max(codec.values(), key=len))
    out["observations"] = len(obs)
    return out


def probe(folder: Path, clips_dir: Path | None, windows: list[int], sigmas: list[float], every: int = 4,
          weights: str | None = None, models_dir: str | None = None, strength: float | None = None,
          sizes: list[int] | None = None, smoothing: tuple[float, float] = SMOOTHING, log=_LOG.info) -> dict:
    """Every clip × face size (or those of `sizes`) of an eval-video `--out` folder; returns the per-clip
    results and means."""
    from ..core.config import EnhanceConfig
    from ..core.models import find_model
    from .evaluate import IdentityScorer

    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise InputError(f"{folder}: no summary.json (give the --out folder of an eval-video run)")
    summary = json.loads(summary_path.read_text())
    scorer = _Scorer(weights, EnhanceConfig().strength if strength is None else strength,
                     IdentityScorer(find_model("mobilefacenet_128d.onnx", models_dir)),
                     (summary.get("generator") or {}).get("mirror", False))  # as the eval-video run enhanced
    result: dict = {"folder": str(folder), "generator": scorer.info.get("name"), "strength": scorer.strength,
                    "every": every, "clips": {}}
    for clip, runs in summary["clips"].items():
        recorded = runs[next(iter(runs))].get("clip")
        if clips_dir is None and not recorded:
            raise InputError(f"{summary_path} does not say where {clip}'s high-resolution clip is: give --clips")
        hr_path = clips_dir / f"{clip}.mp4" if clips_dir is not None else Path(recorded)
        if not hr_path.is_file():
            raise InputError(f"high-resolution clip for {clip} not found: {hr_path}")
        for px, res in runs.items():
            if sizes and int(px) not in sizes:
                continue
            r = probe_clip(hr_path, folder / clip / f"face{px}", res, scorer, windows, sigmas, every, smoothing)
            result["clips"].setdefault(clip, {})[px] = r
            log(format_line(clip, px, r))
            if "temporal" in r:
                log(format_temporal(clip, px, r["temporal"]))
    result["mean"] = {}
    for px in sorted({px for per_size in result["clips"].values() for px in per_size}, key=int):
        per = [s[px] for s in result["clips"].values() if px in s and "single" in s[px]]
        names = [n for n in per[0] if isinstance(per[0][n], dict) and "delta_psnr" in per[0][n]] if per else []
        result["mean"][px] = {n: {"delta_psnr": float(np.mean([p[n]["delta_psnr"] for p in per])),
                                  "worst": float(np.min([p[n]["delta_psnr"] for p in per])),
                                  "id_cos": float(np.mean([p[n]["id_cos"] for p in per]))} for n in names}
        for k in INPUT_SCORES:
            result["mean"][px][k] = float(np.mean([p[k] for p in per])) if per else None
        oracle = [p["codec_oracle"] for p in per if p.get("codec_oracle")]
        result["mean"][px]["codec_oracle"] = {k: float(np.mean([o[k] for o in oracle]))
                                              for k in (oracle[0] if oracle else ()) if k.endswith("_psnr")}
        log(format_line("MEAN", px, result["mean"][px]))
        if per:
            result["mean"][px]["temporal"] = t = {
                n: {k: float(np.mean([p["temporal"][n][k] for p in per])) for k in ("delta_psnr", "id_cos", "temporal")}
                for n, v in per[0]["temporal"].items() if isinstance(v, dict)}
            for n in t:  # the worst clip's change against the pipeline's own outputs
                t[n]["worst_vs_single"] = float(min(p["temporal"][n]["delta_psnr"] - p["temporal"]["single"]["delta_psnr"]
                                                    for p in per))
            log(format_temporal("MEAN", px, t))
    return result


def format_line(clip: str, px: str, r: dict) -> str:
    """One readable line: each estimator's ΔPSNR over bicubic and identity cosine."""
    if r.get("lr_vs_truth_psnr") is None:
        return f"{clip:>8} {px:>3}px  no enhanced observations"
    parts = [f"{n} {v['delta_psnr']:+.2f} dB id {v['id_cos']:.3f}" for n, v in r.items()
             if isinstance(v, dict) and "delta_psnr" in v]
    oracle = r.get("codec_oracle") or {}
    restored = (f"; linear oracle {oracle['coded_psnr']:.1f} → {oracle['restored_psnr']:.1f} (shift alone "
                f"{oracle['shift_only_psnr']:.1f}, without its shift {oracle['unshifted_psnr']:.1f}), "
                f"codec-free {oracle['uncoded_psnr']:.1f}" if oracle else "")
    return (f"{clip:>8} {px:>3}px  input vs truth {r['lr_vs_truth_psnr']:.1f} dB (uncoded "
            f"{r['uncoded_vs_truth_psnr']:.1f}, uncoded in 4:2:0 {r['yuv420_vs_truth_psnr']:.1f}{restored}) | "
            + " | ".join(parts))


def format_temporal(clip: str, px: str, t: dict) -> str:
    """The temporal section in one line: ΔPSNR over bicubic, identity and temporal error per method."""
    parts = [f"{n} {v['delta_psnr']:+.2f} dB id {v['id_cos']:.3f} temporal {v['temporal']:.2f}"
             for n, v in t.items() if isinstance(v, dict)]
    return f"{clip:>8} {px:>3}px  temporal: " + " | ".join(parts)
