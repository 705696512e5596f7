"""The generator benchmark of `enhance-faces lab gpu-run`: every (dtype, mode, entry, batch) cell on `torch-cuda`, the
batch-1 loop beside it, the device-resident rate of the best cell against the measured matmul peak, and
fp16/bf16 against fp32 on real faces. On the CPU (the dry run) the same code runs a tiny grid on torch-cpu.

Results: benchmarks/generator-gpu. AOTInductor's package can crash the process on load, so a compiled mode
runs in a spawned child (`isolated_cells`); `torch.compile` (mode `jit`) is measured that way. `tuning` (`--tune`) came
from what that run showed: the compiled network is the fast one, and the host path was the next limit.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.geometry import ENTRIES

_LOG = logging.getLogger(__name__)


BATCHES = (1, 16, 64, 256, 1024)
DTYPES = ("fp16", "bf16", "fp32")
MODES = ("eager", "graphs", "jit")  # jit: torch.compile under CUDA graphs (AOTInductor's package crashed on load)
COMPILED_MODES = ("jit",)
COMPILED = ("fp16", 16)  # a compiled mode is measured at the headline cell only: compiling takes about a minute


class Clock:
    """The run's deadline, so each section takes only what is left."""

    def __init__(self, minutes: float) -> None:
        self.end = time.monotonic() + minutes * 60

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


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


def _dtype(name: str):
    """The torch dtype of a grid name (fp16 / bf16 / fp32)."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def _runner(model, dtype: str, mode: str, cuda: bool):
    """A backend object with `.run(uint8 (B,e,e,3)) → uint8 (B,128,128,3)` for one precision and mode."""
    from ..stages.enhance.backends import CUDA_COMPILE, TorchCPU, TorchCUDA

    dt = _dtype(dtype)
    if not cuda:
        return TorchCPU(model, dtype=dt, precision="fp32")
    return TorchCUDA(model, dtype=dt, graphs=mode in ("graphs", "jit"),
                     jit=CUDA_COMPILE["default"] if mode == "jit" else None)


def bench_generator_grid(model, name: str, entries, batches, dtypes, modes, cuda: bool, clock: Clock,
                         budget_s: float, log: Callable[[str], None]) -> list[dict]:
    """Every (dtype, mode, entry, batch) cell of one model with `bench_cell`, plus batch-1 loops."""
    rows = []
    for dtype in dtypes:
        for mode in modes:
            if mode in COMPILED_MODES and dtype != COMPILED[0]:
                continue
            if clock.left() < 60:
                log(f"{name}: time is short, {dtype} {mode} skipped")
                rows.append({"model": name, "dtype": dtype, "mode": mode, "skipped": "time"})
                continue
            try:
                be = _runner(model, dtype, mode, cuda)
            except Exception as e:  # a mode that cannot build here is a result, not a crash
                rows.append({"model": name, "dtype": dtype, "mode": mode, "skipped": f"{type(e).__name__}: {e}"})
                log(f"{name} {dtype} {mode}: {e}")
                continue
            for e in entries if mode not in COMPILED_MODES else [x for x in entries if x == COMPILED[1]]:
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
    from ..run.bench import bench_cell, bench_loop

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
    from ..stages.enhance.generator import load_generator

    model, meta = load_generator(Path(weights))
    rows = bench_generator_grid(model, meta.get("name", "generator"), entries=(COMPILED[1],), batches=batches,
                                dtypes=(COMPILED[0] if cuda else "fp32",), modes=(mode,), cuda=cuda,
                                clock=Clock(minutes), budget_s=budget_s, log=_LOG.info)
    (Path(out) / f"isolated_{mode}.json").write_text(json.dumps(rows))


def isolated_cells(weights: Path, mode: str, cuda: bool, clock: Clock, out: Path, log: Callable[[str], None],
                   budget_s: float, batches: tuple[int, ...], limit_s: float = 210) -> list[dict]:
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


def _on_device(model, entry: int, batch: int, dtype: str):
    """A channels_last copy of `model` on the GPU in `dtype`, and a random batch of faces in [-1, 1] for it."""
    import copy

    import torch

    dt = _dtype(dtype)
    m = copy.deepcopy(model).eval().to("cuda", dt).to(memory_format=torch.channels_last)
    x = (torch.rand(batch, 3, entry, entry, device="cuda", dtype=dt) * 2 - 1).contiguous(memory_format=torch.channels_last)
    return m, x


def device_rate(model, entry: int, batch: int, dtype: str, autotune: bool = False,
                compile_mode: str | None = None) -> dict:
    """Faces/s of the model alone on device-resident input (CUDA graph replays), and its FLOP rate.
    `autotune`: cuDNN benchmarks its algorithms per shape; `compile_mode`: torch.compile's mode, under the graph."""
    import torch

    flops = model.flops(entry)  # on the CPU copy, before it moves
    m, x = _on_device(model, entry, batch, dtype)
    fn = torch.compile(m, mode=compile_mode, dynamic=False) if compile_mode else m
    t = time.perf_counter()
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, benchmark=autotune):
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                fn(x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn(x)
        ready = time.perf_counter() - t
        sec = _time_cuda(g.replay, 20)
    return {"entry": entry, "batch": batch, "dtype": dtype, "autotune": autotune, "compile_mode": compile_mode,
            "ready_s": round(ready, 1), "faces_per_s_device": round(batch / sec, 1),
            "gflop_per_face": round(flops / 1e9, 3), "tflops": round(flops * batch / sec / 1e12, 2)}


# (torch.compile setting, largest graph bucket, call sizes): a call above the bucket runs in pipelined chunks
BACKEND_CELLS = (("off", 256, (256, 1024)), ("off", 1024, (1024, 4096)), ("default", 1024, (1024, 4096)),
                 ("max-autotune", 1024, (1024, 4096)))


def _breakdown(be, batch: int) -> dict:
    """Where one chunk's time goes: upload, the uint8 → uint8 graph, download, the host copy out of the pinned
    buffer (each alone, milliseconds). In inference mode, as `run`: the graph's tensors were made in it."""
    import torch

    with torch.inference_mode():
        g, static_in, static_out = be.graph((16, 16, 3), batch)
        host_in = torch.zeros(tuple(static_in.shape), dtype=torch.uint8).pin_memory()
        host_out = torch.empty(tuple(static_out.shape), dtype=torch.uint8).pin_memory()
        out = np.empty(tuple(static_out.shape), np.uint8)
        host = []
        for _ in range(10):
            t = time.perf_counter()
            out[:] = host_out.numpy()
            host.append(time.perf_counter() - t)
        ms = {"upload": _time_cuda(lambda: static_in.copy_(host_in, non_blocking=True), 20),
              "graph": _time_cuda(g.replay, 20),
              "download": _time_cuda(lambda: host_out.copy_(static_out, non_blocking=True), 20),
              "host_copy": float(np.median(host))}
    return {k: round(v * 1e3, 3) for k, v in ms.items()}


def _backend_cells(model, clock: Clock, log: Callable[[str], None], save: Callable[[], None], res: list) -> None:
    """The shipped backend host to host (uint8 faces in, uint8 128 px faces out) at fp16, entry 16, for each
    of `BACKEND_CELLS`: its graph alone on the device, where a chunk's time goes, every call size, and its
    outputs against torch-cpu fp32 on 32 of the faces."""
    import torch

    from ..run.bench import _items
    from ..stages.enhance.backends import CUDA_COMPILE, TorchCUDA

    reference = _runner(model, "fp32", "eager", cuda=False)
    for setting, bucket, calls in BACKEND_CELLS:
        jit = CUDA_COMPILE[setting]
        head = {"backend": f"torch-cuda {f'jit {jit}' if jit else 'graphs'}", "entry": 16, "bucket": bucket}
        if clock.left() < (150 if setting == "max-autotune" else 30):
            res.append({**head, "skipped": "time"})
            continue
        try:
            t = time.perf_counter()
            be = TorchCUDA(model, dtype=torch.float16, graphs=True, jit=jit, max_batch=bucket)
            x = _items(16, max(calls), 0, 0)
            y = be.run(x[:bucket])  # compiles, captures and pins at the bucket
            row = {**head, "ready_s": round(time.perf_counter() - t, 1)}
            diff = np.abs(y[:32].astype(int) - reference.run(x[:32]))
            if jit is None:  # padded into a bucket and cut into chunks (a compiled mode would recompile for it)
                tail = slice(bucket, bucket + 44)
                diff = np.concatenate([diff, np.abs(be.run(x[: tail.stop])[tail].astype(int) - reference.run(x[tail]))])
            row.update(diff_vs_cpu_fp32_mean=round(float(diff.mean()), 3), diff_vs_cpu_fp32_max=int(diff.max()))
            row["ms"] = _breakdown(be, bucket)
            row["faces_per_s_device"] = round(bucket / row["ms"]["graph"] * 1e3, 1)
            for n in calls:
                be.run(x[:n])
                lat = []
                while len(lat) < 30 and sum(lat) < 2.0:
                    t = time.perf_counter()
                    be.run(x[:n])
                    lat.append(time.perf_counter() - t)
                med = float(np.median(lat))
                row[f"call_{n}"] = {"runs": len(lat), "p50_ms": round(med * 1e3, 2), "faces_per_s": round(n / med, 1)}
        except Exception as err:  # a mode that fails here is a result
            row = {**head, "failed": f"{type(err).__name__}: {err}"[:300]}
        res.append(row)
        log(f"tune {row}")
        save()


def tuning(model, peaks: dict, clock: Clock, log: Callable[[str], None], save: Callable[[], None],
           res: list) -> None:
    """The backend host to host (`_backend_cells`), then device-resident rates of the network alone at the
    headline cell (fp16, entry 16): eager under a graph at batch 1024 (the same cell as the earlier sessions',
    so that the card can be compared with theirs) and torch.compile's fastest mode at larger batches; rows go
    into `res` as they come."""
    from ..stages.enhance.backends import CUDA_COMPILE

    _backend_cells(model, clock, log, save, res)
    cells = [(model, 16, 1024, False, None)]
    cells += [(model, 16, b, False, CUDA_COMPILE["max-autotune"]) for b in (2048, 4096)]
    for m, e, b, auto, mode in cells:
        if clock.left() < (150 if mode and mode.startswith("max") else 20):
            res.append({"model": m.__class__.__name__, "entry": e, "batch": b, "compile_mode": mode, "skipped": "time"})
            continue
        try:
            row = {"model": m.__class__.__name__, **device_rate(m, e, b, "fp16", autotune=auto, compile_mode=mode)}
            row["fraction_of_matmul_peak"] = round(row["tflops"] / peaks["matmul_tflops_fp16"], 3)
        except Exception as err:  # a mode that fails here is a result
            row = {"model": m.__class__.__name__, "entry": e, "batch": b, "compile_mode": mode,
                   "failed": f"{type(err).__name__}: {err}"[:300]}
        res.append(row)
        log(f"tune {row}")
        save()


def precision_on_gpu(model, faces: np.ndarray, cuda: bool) -> dict:
    """PSNR to the original faces of fp16/bf16 vs fp32 outputs, per entry, native on the device."""
    import cv2

    from ..run.bench import _psnr

    out = {}
    for e in ENTRIES:
        lr = np.stack([cv2.resize(f, (e, e), interpolation=cv2.INTER_AREA) for f in faces])
        ref = _runner(model, "fp32", "eager", cuda).run(lr)
        row = {"fp32": round(float(_psnr(ref, faces).mean()), 3)}
        for dt in ("fp16", "bf16") if cuda else ():
            y = _runner(model, dt, "eager", cuda).run(lr)
            row[dt] = round(float(_psnr(y, faces).mean()), 3)
            row[f"{dt}_minus_fp32"] = round(row[dt] - row["fp32"], 4)
        out[str(e)] = row
    return out
