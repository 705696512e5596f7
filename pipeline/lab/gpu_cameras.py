"""Cameras per GPU: the whole pipeline on N synthetic 1080p cameras at once, and the largest N that keeps up.

What DeepStream-style deployments quote: how many camera streams one GPU serves in real time. Each camera is
a thread doing what a live session does per frame — decode, detect, track, align, enhance (`FaceFlow`, the
product's per-stream logic, with the detector taken in turns as live cameras take it), annotate (the product's
`Annotator`), encode — with one detector, one generator (its batcher gathers every camera's faces into one
call) and one people embedder (each ended track's original crops, as the catalogue embeds them) shared by
all. The detector and the embedder run in torch (`core.onnx_torch`, `detect.runtime`) on the GPU image,
which has no onnxruntime-gpu; decoding and encoding are OpenCV's FFmpeg on the CPU (the image has no PyAV).

`make_camera` (on the CPU beforehand) composes the camera: faces from the shared talking-head clips at 16–48
px drifting over a dim room, 1920×1080, 25 fps, H.264. `serve` runs N cameras for a measured window after a
warm-up and reports, per camera, frames per second and, per stage, wall and CPU (thread) milliseconds per
frame, plus the process's CPU cores in use and the GPU's utilisation; `cameras_per_gpu` doubles N while every
camera keeps ≥ `REALTIME_FPS`, then bisects between the last N that kept up and the first that did not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from ..core.config import Config
from ..core.runstats import Timings
from ..core.types import Frame

REALTIME_FPS = 25.0  # a camera keeps up when it processes at least this many frames per second
CAMERA_SIZE = (1920, 1080)
CAMERA_FPS = 25
FACE_PX = (16.0, 48.0)  # face widths on the synthetic camera, spread evenly over its faces
# The detector and the embedder, carried converted for torch (`save_graph`), so the job reads them with
# safetensors alone, whichever onnx package the GPU image has.
CAMERA_MODELS = {"det_500m.onnx": "det_500m.safetensors", "mobilefacenet_128d.onnx": "mobilefacenet_128d.safetensors"}
STAGES = ("decode", "detect", "track", "align", "enhance", "annotate", "encode", "embed")


def make_camera(out: Path, clips: list[Path], models_dir: str | Path | None, seconds: float = 8.0,
                faces: int = 12, size: tuple[int, int] = CAMERA_SIZE, crf: int = 26, seed: int = 3) -> dict:
    """A synthetic camera clip (H.264 mp4): `faces` talking heads from `clips` at FACE_PX widths, each a
    soft-edged head-and-shoulders patch drifting slowly over a dim room. Needs PyAV and the detector (CPU)."""
    import av

    from ..core.config import DetectConfig
    from ..core.yuv import from_bgr
    from ..run.demo import paste
    from ..stages.detect import Detector

    if not clips:
        raise ValueError("no clips to make a camera from")
    rng = np.random.default_rng(seed)
    w, h = size
    n = int(round(seconds * CAMERA_FPS))
    detector = Detector(DetectConfig(input_size=320, small_faces=0.0), models_dir, device="cpu")
    people = []
    for k, px in enumerate(np.linspace(*FACE_PX, faces)):
        frames = _frames(clips[k % len(clips)], n)
        found = detector(frames[0])
        if not found:
            continue
        x1, y1, x2, y2 = found[0].box
        side, cx, cy = 2.4 * max(x2 - x1, y2 - y1), (x1 + x2) / 2, (y1 + y2) / 2 + 0.15 * (y2 - y1)
        scale = px / max(x2 - x1, 1.0)
        start = rng.uniform([0.05 * w, 0.1 * h], [0.9 * w, 0.85 * h])
        people.append({"frames": frames, "square": (cx - side / 2, cy - side / 2, side), "scale": scale,
                       "start": start, "drift": rng.uniform(-60, 60, 2), "px": float(px)})
    room = _room(w, h, rng)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=CAMERA_FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for i in range(n):
            frame = room.copy()
            for p in people:
                src = p["frames"][i % len(p["frames"])]
                pos = p["start"] + p["drift"] * i / max(n - 1, 1)
                paste(frame, _patch(src, p["square"], p["scale"]), *pos)
            vf = from_bgr(cv2.GaussianBlur(frame, (0, 0), 0.5))
            vf.pts, vf.time_base = i, Fraction(1, CAMERA_FPS)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {"path": str(out), "size": [w, h], "fps": CAMERA_FPS, "frames": n, "faces": len(people),
            "face_px": [round(p["px"], 1) for p in people], "crf": crf, "bytes": out.stat().st_size}


def _frames(clip: Path, n: int) -> list[np.ndarray]:
    from ..io.sources import open_source

    frames = []
    with open_source(str(clip)) as src:
        for f in src:
            frames.append(f.image)
            if len(frames) >= n:
                break
    return frames


def _room(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    base = (60 + 50 * y) * np.ones((h, w), np.float32)
    room = np.dstack([base * 0.95, base, base * 1.05]).clip(0, 255).astype(np.uint8)
    cv2.rectangle(room, (0, int(0.7 * h)), (w, h), (60, 70, 80), -1)
    for x in rng.uniform(0, w - 300, 6).astype(int):
        cv2.rectangle(room, (int(x), int(0.1 * h)), (int(x) + 260, int(0.35 * h)), (150, 160, 165), -1)
    return room


def _patch(frame: np.ndarray, square: tuple[float, float, float], scale: float) -> np.ndarray:
    """The head-and-shoulders square around the face, scaled, with a soft elliptic alpha (BGRA)."""
    x, y, side = square
    m = np.float32([[scale, 0, -x * scale], [0, scale, -y * scale]])
    size = max(8, int(round(side * scale)))
    patch = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(mask, (size // 2, size // 2), (size // 2 - 1, size // 2 - 1), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(size / 12, 0.5))
    return np.dstack([patch, (mask * 255).astype(np.uint8)])


class StageTimes(Timings):
    """Wall and CPU (this thread's) seconds per stage: the CPU part is what the stage costs the host, the
    rest is waiting (on the GPU, on a turn at the detector, on the generator's batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t, c = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t
            self.cpu[stage] += time.thread_time() - c


@dataclass
class CameraStages:
    """What `FaceFlow` reads of a run's `Stages`, shared by every camera, without the run's sinks (their
    imports need PyAV, which the GPU image lacks); plus the annotator and the people embedder."""

    cfg: Config
    detector: Any
    aligner: Any
    enhancer: Any
    annotator: Any
    embedder: Any
    detect_turns: Any

    @classmethod
    def build(cls, cfg: Config, models_dir: str | Path | None) -> CameraStages:
        from ..core.models import find_model
        from ..io.sinks.annotate import Annotator
        from ..report.people import Embedder
        from ..run.build import Turns
        from ..stages.align import Aligner
        from ..stages.detect import Detector
        from ..stages.enhance.stage import Enhancer

        people = cfg.people
        embedder = Embedder(find_model(people.model, models_dir), people.threads, cfg.device_of(people),
                            people.runtime)
        return cls(cfg, Detector(cfg.detect, models_dir, cfg.device), Aligner(cfg.align),
                   Enhancer(cfg.enhance, cfg.device), Annotator(cfg.output), embedder, Turns())

    def close(self) -> None:
        self.enhancer.close()


class Camera(threading.Thread):
    """One camera: the clip decoded in a loop (stream time runs on), every frame through the pipeline."""

    def __init__(self, index: int, clip: Path, stages: CameraStages, out_dir: Path, stop: threading.Event) -> None:
        super().__init__(name=f"camera-{index}", daemon=True)
        from ..run.flow import FaceFlow

        self.clip, self.stages, self.stop = clip, stages, stop
        self.times = StageTimes()
        self.flow = FaceFlow(stages, CAMERA_FPS, live=True, timings=self.times)
        self.frames = 0
        self.error: str | None = None
        self.out = out_dir / f"camera{index}.mp4"
        self.source = f"cam{index}"

    def run(self) -> None:
        from ..report.people import crop112

        cap = cv2.VideoCapture(str(self.clip))
        writer = None
        try:
            while not self.stop.is_set():
                with self.times("decode"):
                    ok, image = cap.read()
                    if not ok:  # the clip loops: a camera does not end
                        cap.release()
                        cap = cv2.VideoCapture(str(self.clip))
                        ok, image = cap.read()
                if not ok:
                    raise RuntimeError(f"OpenCV cannot decode {self.clip}")
                frame = Frame(image, self.frames, self.frames / CAMERA_FPS, self.source, captured=time.time())
                step = self.flow.step(frame)
                with self.times("annotate"):
                    shown = self.stages.annotator(image, step.faces, self.flow.insets())
                with self.times("encode"):
                    if writer is None:
                        writer = cv2.VideoWriter(str(self.out), cv2.VideoWriter_fourcc(*"mp4v"), CAMERA_FPS,
                                                 (shown.shape[1], shown.shape[0]))
                        if not writer.isOpened():
                            raise RuntimeError(f"OpenCV cannot encode MPEG-4 to {self.out}")
                    writer.write(shown)
                with self.times("embed"):
                    crops = [crop112(f.crop, f.kps) for t in step.ended for f in t.candidates if f.crop is not None]
                    if crops:
                        self.stages.embedder(crops)
                self.frames += 1
        except Exception as e:  # noqa: BLE001 - the trial stops and reports it (`errors`), the job goes on
            self.error = f"{type(e).__name__}: {e}"
            self.stop.set()
        finally:
            cap.release()
            if writer is not None:
                writer.release()

    def snapshot(self) -> tuple[int, dict[str, float], dict[str, float]]:
        return self.frames, dict(self.times.seconds), dict(self.times.cpu)


def _gpu_sampler(stop: threading.Event, samples: list[tuple[float, float]]) -> None:
    """GPU utilisation (%) and memory used (MiB) every 0.25 s, from nvidia-smi, until `stop`."""
    while not stop.is_set():
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
            util, mem = (float(v) for v in q.stdout.strip().splitlines()[0].split(","))
            samples.append((util, mem))
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            return
        stop.wait(0.25)


def serve(clip: Path, n: int, stages: CameraStages, warmup_s: float, window_s: float) -> dict:
    """N cameras on `clip` for `warmup_s` + `window_s`; rates over the window only. The annotated videos go to
    a temporary folder, removed afterwards."""
    out_dir = Path(tempfile.mkdtemp(prefix="cameras_"))
    stop, gpu_stop = threading.Event(), threading.Event()
    cams = [Camera(i, clip, stages, out_dir, stop) for i in range(n)]
    for c in cams:
        c.start()
    stop.wait(warmup_s)
    before = [c.snapshot() for c in cams]
    cpu0, t0 = os.times(), time.perf_counter()
    samples: list[tuple[float, float]] = []
    sampler = threading.Thread(target=_gpu_sampler, args=(gpu_stop, samples), daemon=True)
    sampler.start()
    stop.wait(window_s)
    after = [c.snapshot() for c in cams]
    cpu1, wall = os.times(), time.perf_counter() - t0
    stop.set()
    gpu_stop.set()
    for c in cams:
        c.join(timeout=30)
    shutil.rmtree(out_dir, ignore_errors=True)
    errors = sorted({c.error for c in cams if c.error})
    frames = [a[0] - b[0] for a, b in zip(after, before)]
    total = max(sum(frames), 1)
    per_stage = {}
    for s in STAGES:
        wall_s = sum(a[1].get(s, 0.0) - b[1].get(s, 0.0) for a, b in zip(after, before))
        cpu_s = sum(a[2].get(s, 0.0) - b[2].get(s, 0.0) for a, b in zip(after, before))
        per_stage[s] = {"wall_ms_per_frame": round(1000 * wall_s / total, 2),
                        "cpu_ms_per_frame": round(1000 * cpu_s / total, 2)}
    fps = [f / wall for f in frames]
    res = {"cameras": n, "window_s": round(wall, 2), "frames": sum(frames),
           "fps_per_camera": {"min": round(min(fps), 2), "median": round(float(np.median(fps)), 2),
                              "max": round(max(fps), 2)},
           "frames_per_s": round(sum(frames) / wall, 1), "realtime": min(fps) >= REALTIME_FPS and not errors,
           "cpu_cores_busy": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall, 2),
           "stages": per_stage, "faces_enhanced": sum(c.flow.stats.enhanced for c in cams)}
    if samples:
        util = [u for u, _ in samples]
        res["gpu_util_pct"] = {"mean": round(float(np.mean(util)), 1), "max": round(max(util), 1)}
        res["gpu_mem_mib_max"] = max(m for _, m in samples)
    if errors:
        res["errors"] = errors
    return res


def cameras_per_gpu(clip: Path, stages: CameraStages, budget_s: float, warmup_s: float = 3.0,
                    window_s: float = 10.0, start: int = 1, limit: int = 256,
                    log: Callable[[str], None] = print) -> dict:
    """Double N from `start` while every camera keeps REALTIME_FPS, then bisect; stop when the next trial
    would not fit `budget_s`. Returns every trial and the largest N that kept up (0: not even `start`)."""
    t_end = time.perf_counter() + budget_s
    trials: list[dict] = []

    def trial(n: int) -> bool:
        r = serve(clip, n, stages, warmup_s, window_s)
        trials.append(r)
        log(f"cameras {n}: {r['fps_per_camera']['min']}–{r['fps_per_camera']['max']} fps each, "
            f"{r['frames_per_s']} frames/s, CPU {r['cpu_cores_busy']} cores, GPU {r.get('gpu_util_pct', '-')}"
            + (f" ERRORS {r['errors']}" if r.get("errors") else ""))
        return r["realtime"]

    def fits() -> bool:
        return time.perf_counter() + warmup_s + window_s + 5 < t_end

    good, bad, n = 0, None, start
    while n <= limit and fits():
        if trial(n):
            good, n = n, n * 2
        else:
            bad = n
            break
    while bad is not None and bad - good > 1 and fits():
        mid = (good + bad) // 2
        if trial(mid):
            good = mid
        else:
            bad = mid
    return {"realtime_fps": REALTIME_FPS, "max_realtime_cameras": good, "first_not_realtime": bad,
            "trials": trials}


def network_costs(stages: CameraStages, cuda: bool, repeats: int = 20) -> dict:
    """The detector's and the embedder's networks alone on the device (ms per call), at the whole-frame
    pass's input for a 1080p camera, the small-face pass's, and a batch of 32 faces for the embedder: the
    GPU part of those stages, which the per-stage wall time mixes with the host's and with waiting."""
    import torch

    det, emb = stages.detector.model.net, stages.embedder.net
    w, h = CAMERA_SIZE
    sizes = {"detect_whole_frame": stages.detector.network_size(w, h),
             "detect_small_faces": stages.detector.small_size(w, h)}
    out = {}
    with torch.inference_mode():
        for name, size in sizes.items():
            if size:
                x = torch.zeros(1, 3, size[1], size[0], device=det.device)
                out[name] = {"input": list(size), **_time(lambda: det(x), cuda, repeats)}
        if emb is not None:
            x32 = torch.zeros(32, 3, 112, 112, device=emb.device)
            out["embed_32_faces"] = _time(lambda: emb(x32), cuda, repeats)
    return out


def _time(fn: Callable[[], Any], cuda: bool, repeats: int) -> dict:
    import torch

    for _ in range(3):
        fn()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if cuda:
        torch.cuda.synchronize()
    return {"ms_per_call": round(1000 * (time.perf_counter() - t) / repeats, 3)}


def section(data: Path, weights: Path, cuda: bool, budget_s: float, dry_run: bool,
            log: Callable[[str], None]) -> dict:
    """gpu-run's cameras section on what `--prepare` carried: `data/camera.mp4` and `data/models/` (the
    detector and the embedder as `save_graph` files, run by torch)."""
    from ..core.config import load_config

    models = data / "models"
    device = "cuda" if cuda else "cpu"
    cfg = load_config(None, [f"device={device}", f"enhance.weights={weights}",
                             f"detect.model={CAMERA_MODELS['det_500m.onnx']}", "detect.runtime=torch",
                             f"people.model={CAMERA_MODELS['mobilefacenet_128d.onnx']}", "people.runtime=torch"])
    stages = CameraStages.build(cfg, models)
    try:
        res = {"clip": "camera.mp4 (gpu-run --prepare: shared talking heads at 16-48 px on a 1920x1080 room)",
               "settings": {"device": device, "detect": {"model": cfg.detect.model, "runtime": "torch",
                                                          "input_size": cfg.detect.input_size,
                                                          "small_faces": cfg.detect.small_faces,
                                                          "small_every": cfg.detect.small_every},
                            "enhance": {"backend": stages.enhancer.info.get("backend"),
                                        "batch_size": cfg.enhance.batch_size, "policy": cfg.enhance.policy},
                            "decode_encode": "OpenCV FFmpeg on the CPU (H.264 in, MPEG-4 part 2 out)"},
               "detector": stages.detector.choice.names, "embedder": stages.embedder.choice.names,
               "networks_alone": network_costs(stages, cuda, repeats=2 if dry_run else 20)}
        log(f"cameras: networks alone {res['networks_alone']}")
        timing = dict(warmup_s=1.0, window_s=2.0, limit=2) if dry_run else dict(warmup_s=3.0, window_s=10.0)
        res.update(cameras_per_gpu(data / "camera.mp4", stages, budget_s, log=log, **timing))
        return res
    finally:
        stages.close()


def prepare_camera(out: Path, clips: list[Path], models_dir: str | Path | None, seconds: float = 8.0) -> dict:
    """`--prepare`'s part: the camera clip and the two networks converted for torch, under `out`."""
    from ..core.models import find_model
    from ..core.onnx_torch import read_onnx, save_graph

    (out / "models").mkdir(parents=True, exist_ok=True)
    for onnx_name, name in CAMERA_MODELS.items():
        path = find_model(onnx_name, models_dir)
        save_graph(read_onnx(path), out / "models" / name, source=path.name)
    return make_camera(out / "camera.mp4", clips, models_dir, seconds=seconds)
