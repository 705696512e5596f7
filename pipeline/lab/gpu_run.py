"""`enhance-faces lab gpu-run`: the one prepared job for a lent GPU, and what it carries.

The job is made for a short, bare GPU session (torch with CUDA, OpenCV, onnxruntime, safetensors; no PyAV,
no insightface, no package index) that receives a bounded amount of files (`CARRY_BYTES`). So everything
is decided on the CPU beforehand: `--prepare` writes `data/gpu/` (the synthetic camera clip, the detector and
the embedder converted for torch, a packed video cache, a subset of the still faces, the val faces) sized to
fit beside the checkout; the run then, in this order, writes into one
folder:

1. the card and its two ceilings (a large bf16/fp16 matrix product, a device-to-device copy);
2. cameras per GPU (`gpu_cameras`): the whole pipeline on N synthetic 1080p cameras, the largest N that keeps
   25 fps on every camera, per-stage wall and CPU time, and the detector's and embedder's networks alone;
3. the shipped generator on `torch-cuda`: every entry × batch × fp16/bf16/fp32 × eager+channels_last /
   CUDA graphs, and torch.compile under CUDA graphs (in a child process) at fp16 entry 16; uint8 faces in
   and out as the pipeline feeds it, the batch-1 loop as the baseline, and the device-resident rate of the
   best cell as a fraction of the measured matmul peak; the PFSR reference architecture (random weights)
   the same way; fp16/bf16 vs fp32 PSNR on the val faces;
4. a training burst of the current recipe from the shipped weights for the minutes left (weights + log),
   to be evaluated on the CPU afterwards (`enhance-faces lab eval`, `eval-video`) and shipped only if better.

`results.json` is rewritten after every section, so a run cut by its time limit still leaves what it
measured. `--dry-run` runs the same code on the CPU with a tiny grid (CI runs it). The benchmark itself
is `gpu_bench.py`.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..core.geometry import ENTRIES
from .gpu_bench import (
    BATCHES,
    COMPILED_MODES,
    DTYPES,
    MODES,
    Clock,
    bench_generator_grid,
    ceilings,
    device_rate,
    isolated_cells,
    precision_on_gpu,
    tuning,
)

_LOG = logging.getLogger(__name__)


CARRY_BYTES = 64 * 2**20  # what one device call carries: the checkout's tracked files plus `carry` paths
CARRY_MARGIN = 2**20  # what --prepare leaves free: files the checkout gains before the call, estimates' error
STILLS_SHARE = 0.3  # --prepare's default: the share of the free room given to still faces, the rest to video
MAX_STILLS = 1200
GPU_PYTHON = "3.12"  # the GPU image's Python (benchmarks/generator-gpu: environment)
# What the GPU image may lack, by distribution → module: the burst's (SSIM, the cache path) and the cameras'
# (the tracker and what supervision imports). Pure-Python wheels only; each is installed only where its
# module is missing. The image's own package list (the device tool's KINDS.md, read 2026-11-17) has scipy, pillow,
# rich, requests, tqdm and pyyaml, and none of supervision, trackers, pydeprecate, defusedxml, platformdirs or
# pytorch-msssim.
WHEELS = {"pytorch-msssim": "pytorch_msssim", "platformdirs": "platformdirs", "supervision": "supervision",
          "trackers": "trackers", "pydeprecate": "deprecate", "defusedxml": "defusedxml", "tqdm": "tqdm",
          "rich": "rich", "markdown-it-py": "markdown_it", "mdurl": "mdurl", "pygments": "pygments",
          "requests": "requests", "urllib3": "urllib3", "idna": "idna", "certifi": "certifi",
          "charset-normalizer": "charset_normalizer"}


def environment() -> dict:
    """GPU, driver and torch: which card gave the figures."""
    import torch

    env = {"host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "gpu": None}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count,
                   capability=".".join(map(str, torch.cuda.get_device_capability(0))))
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=20)
            env["driver"], env["max_sm_clock"] = [s.strip() for s in q.stdout.strip().split(",")][:2]
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            env["driver"] = f"nvidia-smi failed: {e}"
    return env


def install_wheels(folder: Path, log: Callable[[str], None]) -> None:
    """Install the carried wheels (the GPU machine has no package index) unless their modules import.

    Into a folder of their own put first on `sys.path`: the image's system Python refuses `pip install`
    into itself (PEP 668), and this process must see the modules without a restart."""
    import importlib
    import importlib.util
    import tempfile

    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    dist = lambda w: w.name.split("-")[0].lower().replace("_", "-")  # noqa: E731 - a wheel file's distribution
    wheels = [w for w in wheels if importlib.util.find_spec(WHEELS.get(dist(w), dist(w).replace("-", "_"))) is None]
    if not wheels:
        return
    missing = [dist(w) for w in wheels]
    target = Path(tempfile.gettempdir()) / "enhance_wheels"
    log(f"installing carried wheels for {missing} into {target}")
    got = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--upgrade",
                          "--target", str(target), *map(str, wheels)], capture_output=True, text=True)
    if got.returncode:
        log(f"pip install failed: {got.stderr.strip()[-300:]}")
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()


def train_burst(config: str, data: Path, out: Path, minutes: float, dry_run: bool, models: str | None,
                init: Path, log: Callable[[str], None]) -> dict:
    """The current recipe from the shipped weights (`init`) for `minutes`; the export comes back for CPU eval.

    The network is the one `init` holds (its architecture from the file's metadata), whatever design the
    recipe names: the burst trains the shipped generator further, and a recipe written for an older, smaller
    design could not load it."""
    import dataclasses

    from ..stages.enhance.generator import read_weights
    from .train.config import ModelConfig, load_train_config
    from .train.degrade import DegradeConfig
    from .train.trainer import Trainer

    video = data / "video.npz"
    arch = read_weights(Path(init))[0]
    over = {"data": str(data / "faces"), "video": str(video) if video.is_file() else "", "out": str(out),
            "max_minutes": minutes, "models": models or "", "val_every": 500, "ckpt_every": 1000, "init": str(init),
            "model": {**dataclasses.asdict(ModelConfig()), **arch}}  # what the file leaves out is the default
    if not video.is_file():
        over["video_p"] = 0.0
    import importlib.util

    if importlib.util.find_spec("av") is None:  # the GPU image has no PyAV (its wheel would not fit the call)
        log("no PyAV here: the burst's H.264 round trip is replaced by JPEG at the same share")
        d = DegradeConfig()
        over["degrade"] = {"p_h264": 0.0, "p_jpeg": d.p_jpeg + d.p_h264}
    if dry_run:
        over.update(steps=2, batch=2, threads=2, precision="fp32", val_faces=4, loss={"heatmap": 0.0})
    cfg = load_train_config(config, over=over)
    t = Trainer(cfg, log=log)
    res = t.fit()
    return {"config": config, "steps": res["step"], "samples": res["samples"], "export": res["export"],
            "minutes": round(t.train_seconds / 60, 2), "final_loss": float(np.mean(res["history"][-50:]))}


def run(out: Path, minutes: float, data: Path, weights: Path, config: str, dry_run: bool, models: str | None,
        log: Callable[[str], None] = _LOG.info, bench: bool = True, tune: bool = False,
        cameras_minutes: float = 3.0, train: bool = True) -> dict:
    import torch

    from ..run.bench import val_faces
    from ..stages.enhance.generator import load_generator
    from .pfsr_reference import PFSRReference

    out.mkdir(parents=True, exist_ok=True)
    clock = Clock(minutes)
    cuda = torch.cuda.is_available() and not dry_run
    res: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dry_run": dry_run,
                 "environment": environment(), "weights": str(weights)}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(res, indent=1))

    save()
    install_wheels(data / "wheels", log)  # the val faces' cache path and the burst's SSIM need them
    if cuda:
        with _section(res, "ceilings", log):
            res["ceilings"] = ceilings()
            log(f"ceilings: {res['ceilings']}")
        save()
    if cameras_minutes > 0 and (data / "camera.mp4").is_file():
        from .gpu_cameras import section as cameras

        with _section(res, "cameras", log):
            res["cameras"] = cameras(data, weights, cuda, min(cameras_minutes * 60, clock.left() - 60), dry_run, log)
        save()
    model, meta = load_generator(weights)
    if tune and cuda and "ceilings" in res and "failed" not in res["ceilings"]:
        res["tuning"] = []
        tuning(model, res["ceilings"], clock, log, save, res["tuning"])
    if bench:  # off in a rerun after a call that measured the grid: the burst gets the time
        grid = dict(entries=ENTRIES, batches=BATCHES, dtypes=DTYPES, modes=MODES, budget_s=0.3) if cuda else \
            dict(entries=(16,), batches=(1, 4), dtypes=("fp32",), modes=("eager",), budget_s=0.05)
        inline = {**grid, "modes": tuple(m for m in grid["modes"] if m not in COMPILED_MODES)}  # compiled: in a child
        res["generator"] = bench_generator_grid(model, meta.get("name", "generator"), cuda=cuda, clock=clock,
                                                log=log, **inline)
        save()
        # AOTInductor killed the whole job on its first real run (the process ended without a word after the
        # package was written), so a compiled cell runs in a child: a crash there is a row, not the end.
        # The dry run sends its eager cell through the same child so that CI exercises the path.
        iso = next((m for m in grid["modes"] if m in COMPILED_MODES), None) if cuda else "eager"
        if iso:
            res["generator"] += isolated_cells(weights, iso, cuda, clock, out, log, budget_s=grid["budget_s"],
                                               batches=grid["batches"])
            save()
        ref = PFSRReference().eval()
        ref_grid = {**inline, "entries": (16,)}
        res["reference"] = bench_generator_grid(ref, "pfsr_ref", cuda=cuda, clock=clock, log=log, **ref_grid)
        save()
        if cuda:
            best = {}
            for name, m, rows in (("generator", model, res["generator"]), ("reference", ref, res["reference"])):
                cells = [r for r in rows if r.get("kind") == "batch" and r["entry"] == 16]
                if not cells:
                    continue
                top = max(cells, key=lambda r: r["faces_per_s"])
                best[name] = {"best_cell": top}
                with _section(best[name], "device_resident", log):  # ceilings failed: a KeyError, recorded
                    dev = device_rate(m, 16, top["batch"], top["dtype"])
                    peak = res["ceilings"]["matmul_tflops_bf16" if top["dtype"] == "bf16" else "matmul_tflops_fp16"]
                    dev["fraction_of_matmul_peak"] = round(dev["tflops"] / peak, 3)  # fp32 cells: of the fp16 peak
                    best[name]["device_resident"] = dev
            res["best"] = best
            save()
    faces_dir = data / "faces" / "val"
    if faces_dir.is_dir():
        with _section(res, "precision", log):
            res["precision"] = precision_on_gpu(model, val_faces(faces_dir, 0 if cuda else 4), cuda)
        save()
    if not train:
        res["train"] = {"skipped": "--no-train"}
    elif (data / "faces" / "train.npz").is_file() and clock.left() > 90:
        carried = data / "models"
        with _section(res, "train", log):
            res["train"] = train_burst(config, data, out / "train", max(0.5, clock.left() / 60 - 1.0), dry_run,
                                       str(carried) if carried.is_dir() else models, weights, log)
    else:
        res["train"] = {"skipped": "no prepared data" if clock.left() > 90 else "time"}
    res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    log(summary(res))
    return res


@contextmanager
def _section(res: dict, key: str, log: Callable[[str], None]) -> Iterator[None]:
    """One section of the job: a failure is written into `res[key]` and the job goes on to the next."""
    try:
        yield
    except Exception as err:
        res[key] = {"failed": f"{type(err).__name__}: {err}"}
        log(f"{key}: failed: {err}")


def summary(res: dict) -> str:
    """The short table printed last (a device call returns only the end of the output)."""
    lines = [f"gpu {res['environment'].get('gpu')} torch {res['environment']['torch']} "
             f"ceilings {res.get('ceilings', '-')}"]
    for part in ("generator", "reference"):
        rows = [r for r in res.get(part, []) if r.get("kind") == "batch"]
        for e in sorted({r["entry"] for r in rows}):
            top = max((r for r in rows if r["entry"] == e), key=lambda r: r["faces_per_s"])
            lines.append(f"{part:<9} e{e:<3} best {top['faces_per_s']:>10.0f} faces/s ({top['dtype']} {top['mode']} "
                         f"batch {top['batch']}, {top['speedup_vs_loop']}× its loop)")
    for name, b in res.get("best", {}).items():
        d = b.get("device_resident", {})
        if "tflops" in d:
            lines.append(f"{name:<9} device-resident {d['faces_per_s_device']:.0f} faces/s = {d['tflops']} TFLOP/s "
                         f"= {d['fraction_of_matmul_peak']:.1%} of matmul peak")
    for e, p in res.get("precision", {}).items():
        lines.append(f"precision e{e}: " + (" ".join(f"{k} {v}" for k, v in p.items()) if isinstance(p, dict) else p))
    lines += [f"FAILED {r['model']} {r['dtype']} {r['mode']} e{r['entry']}: {r['failed']}"
              for part in ("generator", "reference") for r in res.get(part, []) if "failed" in r]
    cams = res.get("cameras", {})
    if "max_realtime_cameras" in cams:
        lines.append(f"cameras: {cams['max_realtime_cameras']} in real time at {cams['realtime_fps']:.0f} fps "
                     f"(first short: {cams['first_not_realtime']}); trials "
                     + ", ".join(f"{t['cameras']}:{t['fps_per_camera']['min']}" for t in cams["trials"]))
    elif cams:
        lines.append(f"cameras: {cams}")
    lines.append(f"train: {res.get('train')}")
    return "\n".join(lines)


def prepare(out: Path, faces: Path, video: Path, stills: int | None, video_mb: float | None, tree_bytes: int,
            fan: Path, wheels: bool = True, log: Callable[[str], None] = _LOG.info,
            camera_clips: list[Path] | None = None, models_dir: str | Path | None = None,
            camera_seconds: float = 8.0) -> dict:
    """`data/gpu/`: with `camera_clips`, the cameras section's clip made from them and its two networks
    (`gpu_cameras.prepare_camera`); faces/{train,val} (the first `stills` train faces, all val), video.npz, the
    FAN (the heatmap loss) and wheels the GPU image lacks, sized so that with the checkout's tracked files
    (`tree_bytes`) the call stays under `CARRY_BYTES`. `stills` None: as many as fit in `STILLS_SHARE` of
    the room the rest leaves (at most `MAX_STILLS`); `video_mb` None: the room left after them."""
    from ..core.errors import InputError
    from .train.pack import pack_video

    if not (faces / "train.npz").is_file():
        raise InputError(f"prepared faces not found: {faces}/train.npz (run `prepare` first)")
    if out.exists():
        shutil.rmtree(out)

    def used() -> int:
        return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())

    def room() -> int:  # what the call can still carry beside the checkout and what is written so far
        return CARRY_BYTES - CARRY_MARGIN - tree_bytes - used()

    def copy_faces(split: str, limit: int) -> None:
        z = np.load(faces / f"{split}.npz", allow_pickle=False)
        keep = slice(0, limit or None)
        (out / "faces" / split).mkdir(parents=True)
        for n in z["names"][keep]:
            shutil.copy2(faces / split / str(n), out / "faces" / split / str(n))
        np.savez_compressed(out / "faces" / f"{split}.npz", **{k: z[k][keep] for k in z.files})

    camera = None
    if camera_clips:
        from .gpu_cameras import prepare_camera

        camera = prepare_camera(out, camera_clips, models_dir, camera_seconds)
        log(f"camera: {camera['faces']} faces of {camera['face_px'][0]}-{camera['face_px'][-1]} px, "
            f"{camera['frames']} frames, {camera['bytes'] / 1e6:.1f} MB")
    copy_faces("val", 0)
    (out / "models").mkdir(exist_ok=True)
    shutil.copy2(fan, out / "models" / fan.name)
    if wheels:  # from the package index (reachable here, not on the GPU machine); pure Python, for its 3.12
        got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                              "--python-version", GPU_PYTHON, "--implementation", "py", "--abi", "none",
                              "--platform", "any", "-d", str(out / "wheels"), *WHEELS], capture_output=True, text=True)
        if got.returncode:
            raise InputError(f"pip download {' '.join(WHEELS)} failed: {got.stderr.strip().splitlines()[-1:]}")
    if stills is None:
        names = np.load(faces / "train.npz", allow_pickle=False)["names"]
        per = np.mean([(faces / "train" / str(n)).stat().st_size for n in names[:100]]) if len(names) else 1.0
        stills = int(np.clip(STILLS_SHARE * room() / per, 1, MAX_STILLS))
    copy_faces("train", stills)
    if video_mb is None:
        video_mb = room() / 1e6
    if video.is_file() and video_mb > 0:
        pack_video(video, out / "video.npz", video_mb, log=log)
    size = used()
    total = size + tree_bytes
    log(f"{out}: {stills} stills, {size / 1e6:.1f} MB; with the checkout's {tree_bytes / 1e6:.1f} MB: "
        f"{total / 2**20:.1f} MiB of the {CARRY_BYTES / 2**20:.0f} MiB a call carries")
    if total > CARRY_BYTES:
        raise InputError(f"{total / 2**20:.1f} MiB would not travel: lower --stills or --video-mb")
    return {"bytes": size, "total_mib": round(total / 2**20, 1), "faces": stills, "camera": camera}
