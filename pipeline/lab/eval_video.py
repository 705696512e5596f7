"""`eval-video`: how faithful the enhanced faces are on real video, against the truth the camera never saw.

For each high-resolution clip and face size: shrink the clip with area averaging so its face has the asked
height, pad it into a CCTV-sized frame, encode it as a camera would (H.264 or H.265, yuv420p, CRF), run the real
pipeline on it with every face enhanced, and for every enhanced observation cut the ground-truth 128 crop
from the high-resolution frame through the same source → crop matrix (`truth.Shrink`). The baseline is
bicubic resampling of the camera frame straight into the same crop. Scores per clip: PSNR, SSIM, identity
cosine (MobileFaceNet, never a training loss), mean skin colour error, detection rate and temporal error
(flicker not in the truth). Writes a JSON and a sample sheet per clip (LR input | bicubic | model | truth).
With `groups` (person → groups such as child, older, darker) the summary also has the means per group.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import InputError
from ..core.geometry import CROP
from ..io.records import TrackRecord
from .truth import Shrink, bicubic_crop, encode, plan_shrink, read_frames, video_rate

_LOG = logging.getLogger(__name__)


METHODS = ("model", "bicubic", "input_bicubic")  # input_bicubic: a diagnostic (what the entry size lost), not the baseline
SKIN = (slice(60, 100), slice(44, 84))  # eyes-to-mouth box of the canonical crop (rows, cols)
DEFAULT_SIZES = (16, 20, 24, 32, 40)


def face_height(path: Path, detector, samples: int = 12) -> float:
    """Median detector-box height of the largest face over frames spread through the clip."""
    total = sum(1 for _ in read_frames(path))
    picks = set(np.linspace(0, total - 1, min(samples, total)).round().astype(int).tolist())
    found = (detector(f) for i, f in enumerate(read_frames(path)) if i in picks)
    heights = [faces[0].height for faces in found if faces]
    if not heights:
        raise InputError(f"{path.name}: no face found at high resolution")
    return float(np.median(heights))


@dataclass
class Obs:
    """One enhanced observation with the crops it is scored on."""

    track: int
    frame: int
    matrix: np.ndarray
    model: np.ndarray | None  # None: resolved (shown as captured); scored as the camera's pixels, i.e. bicubic
    lr: np.ndarray | None
    confidence: float | None = None
    truth: np.ndarray | None = None
    bicubic: np.ndarray | None = None
    fused: np.ndarray | None = None  # the same observation from a track-fusion run, for the sample sheet

    @property
    def input_bicubic(self) -> np.ndarray:
        """The generator's own low-res input upsampled bicubically (shows what cutting at the entry size loses)."""
        if self.lr is None:
            return self.bicubic
        return cv2.resize(self.lr, (CROP, CROP), interpolation=cv2.INTER_CUBIC)


def read_run(run_dir: Path) -> list[Obs]:
    """The enhanced observations of a pipeline run, with their unmarked tiles and crop matrices, and the
    resolved ones (shown as captured, `align.resolved`) without a model output."""
    out = []
    for tj in sorted((run_dir / "tracks").glob("*/track.json")):
        rec = TrackRecord.read(tj)
        for o in rec.observations:
            if o.resolved and o.matrix is not None:
                out.append(Obs(rec.track_id, o.frame, np.array(o.matrix, np.float64), None, None))
                continue
            if not o.enhanced or "enhanced_unmarked" not in o.files or o.matrix is None:
                continue
            model = cv2.imread(str(tj.parent / o.files["enhanced_unmarked"]), cv2.IMREAD_COLOR)
            lr = cv2.imread(str(tj.parent / o.files["lr"]), cv2.IMREAD_COLOR)
            out.append(Obs(rec.track_id, o.frame, np.array(o.matrix, np.float64), model, lr, o.confidence))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def skin_lab(crops: np.ndarray) -> np.ndarray:
    """Mean CIELAB colour of the face region of each crop (N,3)."""
    region = np.ascontiguousarray(crops[:, SKIN[0], SKIN[1]])
    lab = cv2.cvtColor(region.reshape(-1, region.shape[2], 3), cv2.COLOR_BGR2LAB).astype(np.float64)
    lab = lab.reshape(region.shape)
    lab[..., 0] *= 100 / 255
    lab[..., 1:] -= 128
    return lab.mean(axis=(1, 2))


def temporal_error(obs: list[Obs], method: str | Callable[[Obs], np.ndarray]) -> tuple[float, int]:
    """Mean |(X_t − X_t−1) − (T_t − T_t−1)| over consecutive frames of each track, and the number of pairs;
    X is the Obs field `method` names, or what `method` returns for an observation."""
    get = method if callable(method) else (lambda o: getattr(o, method))
    by_track: dict[int, dict[int, Obs]] = defaultdict(dict)
    for o in obs:
        by_track[o.track][o.frame] = o
    errs = []
    for frames in by_track.values():
        for f, o in frames.items():
            prev = frames.get(f - 1)
            if prev is None:
                continue
            a, b = get(o).astype(np.float32), get(prev).astype(np.float32)
            ta, tb = o.truth.astype(np.float32), prev.truth.astype(np.float32)
            errs.append(float(np.abs((a - b) - (ta - tb)).mean()))
    return (float(np.mean(errs)) if errs else float("nan")), len(errs)


@dataclass
class ClipResult:
    clip: str
    face_px: int
    frames: int
    scores: dict = field(default_factory=dict)


def score_clip(hr_path: Path, lr_path: Path, shrink: Shrink, obs: list[Obs], frames: int, scorer) -> dict:
    """Cut truth and bicubic crops for every observation and score model and bicubic against the truth."""
    from .evaluate import ssim_scores

    wanted: dict[int, list[Obs]] = defaultdict(list)
    for o in obs:
        wanted[o.frame].append(o)
    for i, (hr, lr) in enumerate(zip(read_frames(hr_path), read_frames(lr_path))):
        for o in wanted.get(i, []):
            o.truth = shrink.truth(hr, o.matrix)
            o.bicubic = bicubic_crop(lr, o.matrix)
            if o.model is None:  # resolved: the product shows the camera's pixels, never a reconstruction
                o.model = o.bicubic
    obs = [o for o in obs if o.truth is not None]
    found = len({o.frame for o in obs})
    res: dict = {"observations": len(obs), "frames": frames, "detection_rate": found / max(frames, 1),
                 "resolved": sum(o.lr is None for o in obs)}
    if not obs:
        return res
    truth = np.stack([o.truth for o in obs])
    e_truth = scorer.embed(list(truth))
    lab_truth = skin_lab(truth)
    ident: dict[str, np.ndarray] = {}  # per method, each observation's identity cosine to the truth ...
    own: dict[str, np.ndarray] = {}  # ... and its PSNR
    for m in METHODS:
        x = np.stack([getattr(o, m) for o in obs])
        s, _ = ssim_scores(x[..., ::-1].copy(), truth[..., ::-1].copy())
        te, pairs = temporal_error(obs, m)
        ident[m] = (scorer.embed(list(x)) * e_truth).sum(1)
        own[m] = np.array([psnr(a, b) for a, b in zip(x, truth)])
        res[m] = {
            "psnr": float(np.mean(own[m])),
            "ssim": float(np.mean(s)),
            "id_cos": float(np.mean(ident[m])),
            "skin_dE": float(np.mean(np.linalg.norm(skin_lab(x) - lab_truth, axis=1))),
            "temporal": te,
        }
        res["temporal_pairs"] = pairs
    res["delta_psnr"] = res["model"]["psnr"] - res["bicubic"]["psnr"]
    conf = np.array([np.nan if o.confidence is None else o.confidence for o in obs], np.float64)
    # per observation, against the truth: [confidence, PSNR, gain over bicubic, identity cosine, bicubic's identity
    # cosine]; the last two let a reader put an interval on a clip's identity ratio (benchmarks/real-video-groups)
    res["confidence"] = {
        "mean": float(np.nanmean(conf)) if np.isfinite(conf).any() else None,
        "per_obs": [[None if np.isnan(c) else round(float(c), 4), round(float(p), 3), round(float(g), 3),
                     round(float(i), 4), round(float(b), 4)]
                    for c, p, g, i, b in zip(conf, own["model"], own["model"] - own["bicubic"], ident["model"],
                                             ident["bicubic"])]}
    res["id_ratio"] = res["model"]["id_cos"] / max(res["bicubic"]["id_cos"], 1e-6)
    return res


def sample_sheet(obs: list[Obs], path: Path, rows: int = 6, title: str = "") -> None:
    """Rows spread over the clip: LR input (nearest) | bicubic | model | [fused |] truth."""
    obs = sorted((o for o in obs if o.truth is not None), key=lambda o: o.frame)
    if not obs:
        return
    picks = [obs[i] for i in np.linspace(0, len(obs) - 1, min(rows, len(obs))).round().astype(int)]
    fused = any(o.fused is not None for o in picks)
    blank = np.zeros((CROP, CROP, 3), np.uint8)
    tiles = [np.hstack([o.input_bicubic if o.lr is None  # resolved: no generator input
                        else cv2.resize(o.lr, (CROP, CROP), interpolation=cv2.INTER_NEAREST),
                        o.bicubic, o.model]
                       + ([o.fused if o.fused is not None else blank] if fused else []) + [o.truth]) for o in picks]
    names = ["LR input", "bicubic", "model (AI)"] + (["fused (AI)"] if fused else []) + ["truth"]
    top = 18 if title else 0  # the title has a line of its own, above the column names
    header = np.full((22 + top, CROP * len(names), 3), 255, np.uint8)
    if title:
        cv2.putText(header, title, (6, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    for i, t in enumerate(names):
        cv2.putText(header, t, (i * CROP + 6, top + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), np.vstack([header] + tiles))


def person_of(clip: str, people: Collection[str]) -> str:
    """The person a clip shows: its name, or the name before `_<n>` (a person's clips are `<person>_<n>`)."""
    return clip if clip in people else clip.rsplit("_", 1)[0]


def evaluate_clips(clips: list[Path], sizes: list[int], out: Path, crf: int = 26, weights: str | None = None,
                   models_dir: str | None = None, overrides: list[str] | None = None, fused: str | None = None,
                   fusion: int = 8, log=_LOG.info, codec: str = "libx264",
                   groups: dict[str, list[str]] | None = None) -> dict:
    """Run the protocol for every clip × face size; returns (and writes) the summary.

    With `fused` (a track-fusion generator) every camera clip is also run with `enhance.fusion: fusion` and
    its tiles scored as `fused`, beside the single-frame `model` and `bicubic`.
    """
    from ..core.config import DetectConfig, load_config
    from ..core.models import find_model
    from ..run.build import Stages
    from ..stages.detect import Detector
    from .evaluate import IdentityScorer

    for c in clips:
        if not c.is_file():
            raise InputError(f"clip not found: {c}")
    sets = ["enhance.policy=all", "output.unmarked_tiles=true", "output.video=false", "output.gallery=false",
            *(overrides or [])]
    runs = {"model": sets + ([f"enhance.weights={weights}"] if weights else [])}
    if fused:
        runs["fused"] = sets + [f"enhance.weights={fused}", f"enhance.fusion={fusion}"]
    stages = {name: Stages(load_config(None, s), models_dir, progress=False) for name, s in runs.items()}
    scorer = IdentityScorer(find_model("mobilefacenet_128d.onnx", models_dir))
    hr_detector = Detector(DetectConfig(model=stages["model"].cfg.detect.model, input_size=320, small_faces=0.0),
                           models_dir)
    summary: dict = {"crf": crf, "codec": codec, "sizes": sizes, "settings": runs, "clips": {},
                     **{f"generator_{n}" if n != "model" else "generator": st.enhancer.info if st.enhancer else None
                        for n, st in stages.items()}}
    try:
        for clip in clips:
            hr_h = face_height(clip, hr_detector)
            w, h = next(read_frames(clip)).shape[1::-1]
            for px in sizes:
                t0 = time.time()
                res = _clip_size(clip, px, hr_h, (w, h), out / clip.stem / f"face{px}", crf, stages, scorer, codec)
                summary["clips"].setdefault(clip.stem, {})[str(px)] = res
                log(_line(clip.stem, px, res) + f"  ({time.time() - t0:.0f}s)")
    finally:
        for st in stages.values():
            st.close()
    summary["mean"] = {str(px): _mean([summary["clips"][c][str(px)] for c in summary["clips"]
                                       if str(px) in summary["clips"][c]]) for px in sizes}
    if groups:
        members: dict[str, list[str]] = defaultdict(list)
        for c in summary["clips"]:
            for g in groups.get(person_of(c, groups), []):
                members[g].append(c)
        summary["groups"] = {g: {"clips": cs, **{str(px): _mean([summary["clips"][c][str(px)] for c in cs
                                                               if str(px) in summary["clips"][c]]) for px in sizes}}
                             for g, cs in sorted(members.items())}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _clip_size(clip: Path, px: int, hr_h: float, size: tuple[int, int], d: Path, crf: int, stages: dict,
               scorer, codec: str = "libx264") -> dict:
    """One clip at one face size: the camera clip, a pipeline run per generator, the scores."""
    from ..io.sources import open_source
    from ..run.session import run_source

    d.mkdir(parents=True, exist_ok=True)
    shrink = plan_shrink(size[0], size[1], hr_h, px)
    lr_path = d / "camera.mp4"
    n = encode((shrink.apply(f) for f in read_frames(clip)), lr_path, video_rate(clip), crf=crf, codec=codec)
    scored = {}
    for name, st in stages.items():
        run = d / ("run" if name == "model" else f"run_{name}")
        with open_source(str(lr_path), st.cfg.source) as src:
            run_source(st, src, run)
        obs = read_run(run)
        scored[name] = (score_clip(clip, lr_path, shrink, obs, n, scorer), obs)
    res, obs = scored["model"]
    if "fused" in scored:
        fres, fobs = scored["fused"]
        if "model" in fres:
            res["fused"] = fres["model"]
            res["delta_fused"] = fres["delta_psnr"]
            res["fused_vs_model"] = fres["model"]["psnr"] - res["model"]["psnr"] if "model" in res else None
            res["fused_id_ratio"] = fres["id_ratio"]
        by_frame = {(o.track, o.frame): o for o in fobs}
        for o in obs:
            f = by_frame.get((o.track, o.frame))
            o.fused = f.model if f is not None else None
    res.update(face_px=px, hr_face_px=round(hr_h, 1), shrink=list(shrink.scale), clip=str(clip))
    sample_sheet(obs, d / "samples.png", title=f"{clip.stem} {px}px")
    return res


def _mean(results: list[dict]) -> dict:
    rs = [r for r in results if "model" in r]
    if not rs:
        return {}
    out: dict = {"clips": len(rs), "detection_rate": float(np.mean([r["detection_rate"] for r in results]))}
    for m in (*METHODS, "fused"):
        if all(m in r for r in rs):
            out[m] = {k: float(np.nanmean([r[m][k] for r in rs])) for k in rs[0][m]}
    d = [r["delta_psnr"] for r in rs]
    ratios = [r["id_ratio"] for r in rs]
    out.update(delta_psnr=float(np.mean(d)), delta_psnr_min=float(np.min(d)), id_ratio_min=float(np.min(ratios)),
               id_ratio_mean=float(np.mean(ratios)), id_at_least_bicubic=int(sum(x >= 1.0 for x in ratios)))
    if "fused" in out:
        out.update(delta_fused=float(np.mean([r["delta_fused"] for r in rs])),
                   delta_fused_min=float(np.min([r["delta_fused"] for r in rs])),
                   fused_vs_model_min=float(np.min([r["fused_vs_model"] for r in rs])),
                   fused_id_ratio_min=float(np.min([r["fused_id_ratio"] for r in rs])))
    return out


def _line(name: str, px: int, r: dict) -> str:
    if "model" not in r:
        return f"{name:>8s} {px:3d}px  no faces found ({r['frames']} frames)"
    m, b = r["model"], r["bicubic"]
    line = (f"{name:>8s} {px:3d}px  det {r['detection_rate']:.2f}  PSNR {m['psnr']:.2f} vs {b['psnr']:.2f} "
            f"({r['delta_psnr']:+.2f})  SSIM {m['ssim']:.3f} vs {b['ssim']:.3f}  ID {m['id_cos']:.3f} vs "
            f"{b['id_cos']:.3f}  skinΔE {m['skin_dE']:.1f} vs {b['skin_dE']:.1f}  temporal {m['temporal']:.2f} vs "
            f"{b['temporal']:.2f}")
    if r.get("resolved"):
        line += f"  ({r['resolved']} of {r['observations']} resolved: shown as captured)"
    if "fused" in r:
        f = r["fused"]
        line += (f"  | fused PSNR {f['psnr']:.2f} ({r['delta_fused']:+.2f} vs bicubic, {r['fused_vs_model']:+.2f} vs "
                 f"model) ID {f['id_cos']:.3f} temporal {f['temporal']:.2f}")
    return line


def format_summary(summary: dict) -> str:
    lines = []
    for px in summary["sizes"]:
        for clip, per in summary["clips"].items():
            if str(px) in per:
                lines.append(_line(clip, px, per[str(px)]))
        mean = summary["mean"].get(str(px))
        if mean:
            m, b = mean["model"], mean["bicubic"]
            lines.append(f"{'MEAN':>8s} {px:3d}px  det {mean['detection_rate']:.2f}  ΔPSNR {mean['delta_psnr']:+.2f} "
                         f"(worst clip {mean['delta_psnr_min']:+.2f})  ID {m['id_cos']:.3f} vs {b['id_cos']:.3f} "
                         f"(worst ratio {mean['id_ratio_min']:.2f})  temporal {m['temporal']:.2f} vs {b['temporal']:.2f}")
            if "fused" in mean:
                f = mean["fused"]
                lines.append(f"{'FUSED':>8s} {px:3d}px  ΔPSNR vs bicubic {mean['delta_fused']:+.2f} (worst clip "
                             f"{mean['delta_fused_min']:+.2f}), vs model worst clip {mean['fused_vs_model_min']:+.2f}  "
                             f"ID {f['id_cos']:.3f} (worst ratio {mean['fused_id_ratio_min']:.2f})  "
                             f"temporal {f['temporal']:.2f}")
        for group, per in summary.get("groups", {}).items():
            g = per.get(str(px))
            if g:
                lines.append(f"{group.upper():>8s} {px:3d}px  ({g['clips']} clips) ΔPSNR {g['delta_psnr']:+.2f} "
                             f"(worst {g['delta_psnr_min']:+.2f})  ID {g['model']['id_cos']:.3f} vs "
                             f"{g['bicubic']['id_cos']:.3f} (worst ratio {g['id_ratio_min']:.2f})  skinΔE "
                             f"{g['model']['skin_dE']:.1f} vs {g['bicubic']['skin_dE']:.1f}")
        lines.append("")
    return "\n".join(lines)
