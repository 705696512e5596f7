"""`run.py gpu-run`: the one prepared job for a lent GPU, and what it carries.

A GPU comes rarely here, for about 15 minutes, bare (torch with CUDA, OpenCV, onnxruntime, safetensors; no
PyAV, no insightface, no package index) and with at most 64 MiB of files. So everything is decided on the
CPU beforehand: `--prepare` writes `data/gpu/` (a packed video cache, a subset of the still faces, the val
faces) sized to fit beside the checkout; the run then, in this order, writes into one folder:

1. the card and its two ceilings (a large bf16/fp16 matrix product, a device-to-device copy);
2. the shipped generator on `torch-cuda`: every entry × batch × fp16/bf16/fp32 × eager+channels_last /
   CUDA graphs / AOTInductor, uint8 faces in and out as the pipeline feeds it, the batch-1 loop as the
   baseline, and the device-resident rate of the best cell as a fraction of the measured matmul peak;
   the PFSR reference architecture (random weights) the same way; fp16/bf16 vs fp32 PSNR on the val faces;
3. a training burst of the current recipe from the shipped weights for the minutes left (weights + log),
   to be evaluated on the CPU afterwards (`run.py eval`, `eval-video`) and shipped only if better.

`results.json` is rewritten after every section, so a run cut by its time limit still leaves what it
measured. `--dry-run` runs the same code on the CPU with a tiny grid (CI runs it).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .geometry import CROP, ENTRIES

CARRY_BYTES = 64 * 2**20  # what one device call carries: the checkout's tracked files plus `carry` paths
BATCHES = (1, 16, 64, 256, 1024)
DTYPES = ("fp16", "bf16", "fp32")
MODES = ("eager", "graphs", "compile")
WHEELS = ("pytorch-msssim", "platformdirs")  # what the training burst needs that the GPU image lacks
COMPILED = ("fp16", 16)  # AOTInductor compiles a package per (dtype, entry), about a minute each: the headline cell


class Clock:
    """The run's deadline, so each section takes only what is left."""

    def __init__(self, minutes: float) -> None:
        self.end = time.monotonic() + minutes * 60

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def environment() -> dict:
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


def _time_cuda(fn: Callable[[], object], reps: int) -> float:
    """Median seconds of `fn` over `reps` runs, timed with CUDA events after a warm-up."""
    import torch

    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return float(np.median(times))


def ceilings() -> dict:
    """Measured peaks: dense matmul TFLOP/s per dtype (random operands) and copy bandwidth (read + write)."""
    import torch

    out = {}
    n = 8192
    for name, dt in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        a, b = torch.randn(n, n, device="cuda", dtype=dt), torch.randn(n, n, device="cuda", dtype=dt)
        out[f"matmul_tflops_{name}"] = round(2 * n**3 / _time_cuda(lambda: a @ b, 10) / 1e12, 1)
    x = torch.randn(2**28, device="cuda")  # 1 GiB
    y = torch.empty_like(x)
    out["copy_tb_s"] = round(2 * x.numel() * 4 / _time_cuda(lambda: y.copy_(x), 10) / 1e12, 2)
    return out


def install_wheels(folder: Path, log: Callable[[str], None]) -> None:
    """Install the carried wheels (the GPU machine has no package index) unless their modules import.

    Into a folder of their own put first on `sys.path`: the image's system Python refuses `pip install`
    into itself (PEP 668), and this process must see the modules without a restart."""
    import importlib
    import importlib.util
    import tempfile

    missing = [w for w in WHEELS if importlib.util.find_spec(w.replace("-", "_")) is None]
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not (missing and wheels):
        return
    target = Path(tempfile.gettempdir()) / "enhance_wheels"
    log(f"installing carried wheels for {missing} into {target}")
    got = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--upgrade",
                          "--target", str(target), *map(str, wheels)], capture_output=True, text=True)
    if got.returncode:
        log(f"pip install failed: {got.stderr.strip()[-300:]}")
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()


def _dtype(name: str):
    """The torch dtype of a grid name (fp16 / bf16 / fp32)."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def _runner(model, dtype: str, mode: str, cuda: bool, sha: str, cache: Path | None = None):
    """A backend object with `.run(uint8 (B,e,e,3)) → uint8 (B,128,128,3)` for one precision and mode."""
    from .enhance.backends import TorchCPU, TorchCUDA

    dt = _dtype(dtype)
    if not cuda:
        return TorchCPU(model, dtype=dt)
    return TorchCUDA(model, dtype=dt, graphs=mode == "graphs", compile=mode == "compile", weights_sha=f"{sha}{dtype}",
                     cache_dir=cache)


def bench_generator_grid(model, name: str, entries, batches, dtypes, modes, cuda: bool, clock: Clock,
                         budget_s: float, sha: str, log: Callable[[str], None], cache: Path) -> list[dict]:
    """Every (dtype, mode, entry, batch) cell of one model with `bench_cell`, plus batch-1 loops."""
    rows = []
    for dtype in dtypes:
        for mode in modes:
            if mode == "compile" and dtype != COMPILED[0]:
                continue
            if clock.left() < 60:
                log(f"{name}: time is short, {dtype} {mode} skipped")
                rows.append({"model": name, "dtype": dtype, "mode": mode, "skipped": "time"})
                continue
            try:
                be = _runner(model, dtype, mode, cuda, sha, cache)
            except Exception as e:  # a mode that cannot build here is a result, not a crash
                rows.append({"model": name, "dtype": dtype, "mode": mode, "skipped": f"{type(e).__name__}: {e}"})
                log(f"{name} {dtype} {mode}: {e}")
                continue
            for e in entries if mode != "compile" else [x for x in entries if x == COMPILED[1]]:
                try:
                    rows += _cells(be, name, dtype, mode, e, batches, budget_s, log)
                except Exception as err:  # the first real execution may fail in one mode: record it, go on
                    rows.append({"model": name, "dtype": dtype, "mode": mode, "entry": e,
                                 "failed": f"{type(err).__name__}: {err}"})
                    log(f"{name} {dtype} {mode} e{e}: failed: {err}")
    return rows


def _cells(be, name: str, dtype: str, mode: str, e: int, batches, budget_s: float,
           log: Callable[[str], None]) -> list[dict]:
    """The batch-1 loop and every batch of one (model, dtype, mode, entry)."""
    from .bench import bench_cell, bench_loop

    t = time.perf_counter()
    loop = bench_loop(be.run, e, faces=32)
    rows = [{"model": name, "dtype": dtype, "mode": mode, "kind": "loop",
             "first_call_s": round(time.perf_counter() - t, 2), **loop}]
    for b in batches:
        cell = bench_cell(be.run, e, b, budget_s, max_runs=50)
        cell["speedup_vs_loop"] = round(cell["faces_per_s"] / loop["faces_per_s"], 1)
        rows.append({"model": name, "dtype": dtype, "mode": mode, "kind": "batch", **cell})
    top = max(r["faces_per_s"] for r in rows[1:])
    log(f"{name:<10} {dtype} {mode:<7} e{e:<3} loop {loop['faces_per_s']:>8.0f}  best batch {top:>10.0f} faces/s")
    return rows


def _isolated_child(weights: str, mode: str, cuda: bool, minutes: float, out: str, budget_s: float,
                    batches: tuple[int, ...]) -> None:
    """The child of `isolated_cells`: one mode's grid at the compiled dtype and entry, rows to a JSON file."""
    from .enhance.generator import load_generator
    from .models import sha256

    model, meta = load_generator(Path(weights))
    rows = bench_generator_grid(model, meta.get("name", "generator"), entries=(COMPILED[1],), batches=batches,
                                dtypes=(COMPILED[0] if cuda else "fp32",), modes=(mode,), cuda=cuda,
                                clock=Clock(minutes), budget_s=budget_s, sha=sha256(Path(weights)), log=print,
                                cache=Path(out) / "aot")
    (Path(out) / f"isolated_{mode}.json").write_text(json.dumps(rows))


def isolated_cells(weights: Path, mode: str, cuda: bool, clock: Clock, out: Path, log: Callable[[str], None],
                   budget_s: float, batches: tuple[int, ...], limit_s: float = 150) -> list[dict]:
    """One mode's cells in a spawned process; a crash or a hang becomes a `failed` row with its exit code."""
    import multiprocessing as mp

    name = f"isolated_{mode}.json"
    (out / name).unlink(missing_ok=True)
    wait = min(limit_s, clock.left() - 60)
    if wait < 60:
        return [{"model": "generator", "dtype": COMPILED[0], "mode": mode, "skipped": "time"}]
    p = mp.get_context("spawn").Process(target=_isolated_child, args=(str(weights), mode, cuda, wait / 60, str(out),
                                                                      budget_s, tuple(batches)))
    p.start()
    p.join(wait)
    if p.is_alive():
        p.kill()
        p.join()
    if p.exitcode == 0 and (out / name).is_file():
        rows = json.loads((out / name).read_text())
        (out / name).unlink()
        return rows
    why = "timed out" if p.exitcode in (-9, None) else f"the process exited with code {p.exitcode}"
    log(f"generator {mode}: {why}")
    return [{"model": "generator", "dtype": COMPILED[0], "mode": mode, "entry": COMPILED[1], "failed": why}]


def device_rate(model, entry: int, batch: int, dtype: str) -> dict:
    """Faces/s of the model alone on device-resident input (CUDA graph replays), and its FLOP rate."""
    import copy

    import torch

    flops = model.flops(entry)  # on the CPU copy, before it moves
    dt = _dtype(dtype)
    m = copy.deepcopy(model).eval().to("cuda", dt).to(memory_format=torch.channels_last)
    x = (torch.rand(batch, 3, entry, entry, device="cuda", dtype=dt) * 2 - 1).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                m(x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            m(x)
        sec = _time_cuda(g.replay, 20)
    return {"entry": entry, "batch": batch, "dtype": dtype, "faces_per_s_device": round(batch / sec, 1),
            "gflop_per_face": round(flops / 1e9, 3), "tflops": round(flops * batch / sec / 1e12, 2)}


def precision_on_gpu(model, faces: np.ndarray, cuda: bool) -> dict:
    """PSNR to the original faces of fp16/bf16 vs fp32 outputs, per entry, native on the device."""
    import cv2

    from .bench import _psnr

    out = {}
    for e in ENTRIES:
        lr = np.stack([cv2.resize(f, (e, e), interpolation=cv2.INTER_AREA) for f in faces])
        ref = _runner(model, "fp32", "eager", cuda, "").run(lr)
        row = {"fp32": round(float(_psnr(ref, faces).mean()), 3)}
        for dt in ("fp16", "bf16") if cuda else ():
            y = _runner(model, dt, "eager", cuda, "").run(lr)
            row[dt] = round(float(_psnr(y, faces).mean()), 3)
            row[f"{dt}_minus_fp32"] = round(row[dt] - row["fp32"], 4)
        out[str(e)] = row
    return out


def train_burst(config: str, data: Path, out: Path, minutes: float, dry_run: bool, models: str | None,
                init: Path, log: Callable[[str], None]) -> dict:
    """The current recipe from the shipped weights (`init`) for `minutes`; the export comes back for CPU eval."""
    from .train.config import load_train_config
    from .train.degrade import DegradeConfig
    from .train.trainer import Trainer

    video = data / "video.npz"
    over = {"data": str(data / "faces"), "video": str(video) if video.is_file() else "", "out": str(out),
            "max_minutes": minutes, "models": models or "", "val_every": 500, "ckpt_every": 1000, "init": str(init)}
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
        log: Callable[[str], None] = print, bench: bool = True) -> dict:
    import torch

    from .bench import val_faces
    from .enhance.generator import load_generator
    from .enhance.pfsr_reference import PFSRReference
    from .models import sha256

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
    model, meta = load_generator(weights)
    if bench:  # off in a rerun after a call that measured the grid: the burst gets the time
        grid = dict(entries=ENTRIES, batches=BATCHES, dtypes=DTYPES, modes=MODES, budget_s=0.3) if cuda else \
            dict(entries=(16,), batches=(1, 4), dtypes=("fp32",), modes=("eager",), budget_s=0.05)
        inline = {**grid, "modes": tuple(m for m in grid["modes"] if m != "compile")}
        res["generator"] = bench_generator_grid(model, meta.get("name", "generator"), cuda=cuda, clock=clock,
                                                sha=sha256(weights), log=log, cache=out / "aot", **inline)
        save()
        # AOTInductor killed the whole job on its first real run (the process ended without a word after the
        # package was written), so the compiled cell runs in a child: a crash there is a row, not the end.
        # The dry run sends its eager cell through the same child so that CI exercises the path.
        iso = "compile" if cuda and "compile" in grid["modes"] else ("eager" if not cuda else None)
        if iso:
            res["generator"] += isolated_cells(weights, iso, cuda, clock, out, log, budget_s=grid["budget_s"],
                                               batches=grid["batches"])
            save()
        ref = PFSRReference().eval()
        ref_grid = {**grid, "entries": (16,), "modes": tuple(m for m in grid["modes"] if m != "compile")}
        res["reference"] = bench_generator_grid(ref, "pfsr_ref", cuda=cuda, clock=clock, sha="ref", log=log,
                                                cache=out / "aot", **ref_grid)
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
    if (data / "faces" / "train.npz").is_file() and clock.left() > 90:
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
    lines.append(f"train: {res.get('train')}")
    return "\n".join(lines)


def prepare(out: Path, faces: Path, video: Path, stills: int, video_mb: float, tree_bytes: int, fan: Path,
            wheels: bool = True, log: Callable[[str], None] = print) -> dict:
    """`data/gpu/`: faces/{train,val} (the first `stills` train faces, all val), video.npz, the FAN (the
    heatmap loss) and wheels the GPU image lacks, sized so that with the checkout's tracked files
    (`tree_bytes`) the call stays under `CARRY_BYTES`."""
    from .errors import InputError
    from .train.pack import pack_video

    if not (faces / "train.npz").is_file():
        raise InputError(f"prepared faces not found: {faces}/train.npz (run `prepare` first)")
    if out.exists():
        shutil.rmtree(out)
    for split, limit in (("train", stills), ("val", 0)):
        z = np.load(faces / f"{split}.npz", allow_pickle=False)
        keep = slice(0, limit or None)
        (out / "faces" / split).mkdir(parents=True)
        for n in z["names"][keep]:
            shutil.copy2(faces / split / str(n), out / "faces" / split / str(n))
        np.savez_compressed(out / "faces" / f"{split}.npz", **{k: z[k][keep] for k in z.files})
    if video.is_file():
        pack_video(video, out / "video.npz", video_mb, log=log)
    (out / "models").mkdir()
    shutil.copy2(fan, out / "models" / fan.name)
    if wheels:  # from the package index (reachable here, not on the GPU machine)
        got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                              "-d", str(out / "wheels"), *WHEELS], capture_output=True, text=True)
        if got.returncode:
            raise InputError(f"pip download {' '.join(WHEELS)} failed: {got.stderr.strip().splitlines()[-1:]}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    total = size + tree_bytes
    log(f"{out}: {size / 1e6:.1f} MB; with the checkout's {tree_bytes / 1e6:.1f} MB: {total / 2**20:.1f} MiB "
        f"of the {CARRY_BYTES / 2**20:.0f} MiB a call carries")
    if total > CARRY_BYTES:
        raise InputError(f"{total / 2**20:.1f} MiB would not travel: lower --stills or --video-mb")
    return {"bytes": size, "total_mib": round(total / 2**20, 1), "faces": stills}
