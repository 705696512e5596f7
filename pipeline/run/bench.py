"""`enhance-faces bench`: generator throughput/latency per backend × batch × entry, a batch-1 loop baseline,
the end-to-end real-time factor of the pipeline on a clip, and the fp16-vs-fp32 quality check.

Timings on a shared CPU are noisy: every cell repeats its batch for a time budget and reports p50/p99
per batch, not a single run. The defaults are short enough for a 2-core CPU; `--full` gives the full
grid (batches 1, 16, 64, 256, 1024) meant for a GPU.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..core.geometry import CROP, ENTRIES

_LOG = logging.getLogger(__name__)


DEFAULT_BATCHES = (1, 16, 64)
FULL_BATCHES = (1, 16, 64, 256, 1024)


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def _items(entry: int, n: int, frames: int, seed: int) -> np.ndarray:
    """n random inputs: (n,e,e,3) crops, or with fusion (n,K,e,e,4) items with every observation present."""
    rng = np.random.default_rng(seed)
    if not frames:
        return rng.integers(0, 256, (n, entry, entry, 3), dtype=np.uint8)
    x = rng.integers(0, 256, (n, frames, entry, entry, 4), dtype=np.uint8)
    x[..., 3] = 255
    return x


def bench_cell(run: Callable[[np.ndarray], np.ndarray], entry: int, batch: int, budget_s: float = 2.0,
               max_runs: int = 200, seed: int = 0, frames: int = 0) -> dict:
    """Repeat one (entry, batch) for `budget_s` after a warm-up; at least one timed run. With `frames`, each
    item fuses that many observations (faces_per_s is then fused outputs per second)."""
    x = _items(entry, batch, frames, seed)
    run(x[: min(batch, 4)])  # warm-up: lazy sessions, allocator, thread pools
    lat: list[float] = []
    start = time.perf_counter()
    while not lat or (time.perf_counter() - start < budget_s and len(lat) < max_runs):
        t = time.perf_counter()
        run(x)
        lat.append(time.perf_counter() - t)
    return {"entry": entry, "batch": batch, "frames": frames or 1, "runs": len(lat),
            "faces_per_s": round(batch * len(lat) / sum(lat), 2),
            "p50_ms": round(_pct(lat, 50) * 1e3, 2), "p99_ms": round(_pct(lat, 99) * 1e3, 2)}


def bench_loop(run: Callable[[np.ndarray], np.ndarray], entry: int, faces: int = 16, seed: int = 0,
               frames: int = 0) -> dict:
    """The pre-batching baseline: one face per call, in a Python loop."""
    x = _items(entry, faces, frames, seed)
    run(x[:1])
    t = time.perf_counter()
    for i in range(faces):
        run(x[i : i + 1])
    dt = time.perf_counter() - t
    return {"entry": entry, "faces": faces, "frames": frames or 1, "faces_per_s": round(faces / dt, 2)}


def bench_generator(weights: str | Path, backends: list[str], batches=DEFAULT_BATCHES, entries=ENTRIES,
                    budget_s: float = 2.0, threads: int = 0, loop_faces: int = 16, fusion: int = 0,
                    cpu_precisions: tuple[str, ...] = ("auto",), log: Callable[[str], None] = _LOG.info) -> list[dict]:
    """Every available backend × entry × batch, plus a batch-1 loop per backend × entry. A track-fusion
    weights file is measured on items of `fusion` observations (fused outputs per second). torch-cpu is
    built once per `cpu_precisions` entry (rows "torch-cpu fp32", "torch-cpu bf16" when there are several).

    Backends are interleaved cell by cell (not one backend after the other), so a load change on a
    shared machine hits all of them alike; each row records the load average when it was measured.
    """
    from ..core.models import sha256
    from ..stages.enhance.backends import availability, create, item_shapes
    from ..stages.enhance.export import load_any
    from ..stages.enhance.fusion import is_fusion

    found = availability()
    model = load_any(weights)
    frames = (fusion or 8) if is_fusion(weights) else 0
    digest = sha256(weights)
    rows: list[dict] = []
    built = {}
    shapes = [s for s in item_shapes(tuple(entries), frames) if not frames or s[0] == frames]
    for name in backends:
        ok, why = found.get(name, (False, "unknown backend"))
        if not ok:
            log(f"skip {name}: {why}")
            rows.append({"backend": name, "skipped": why})
            continue
        for p in cpu_precisions if name == "torch-cpu" else ("auto",):
            label = f"{name} {p}" if name == "torch-cpu" and len(cpu_precisions) > 1 else name
            t = time.perf_counter()
            built[label] = create(name, weights, model=model, threads=threads, weights_sha=digest, shapes=shapes,
                                  max_batch=max(batches), cpu_precision=p)
            log(f"{label}: ready in {time.perf_counter() - t:.1f}s ({built[label].describe()['precision']})")
    for e in entries:
        loops = {}
        for name, be in built.items():
            loop = bench_loop(be.run, e, loop_faces, frames=frames)
            loops[name] = loop["faces_per_s"]
            rows.append({"backend": name, "kind": "loop", "precision": be.describe()["precision"],
                         "load_avg_1m": os.getloadavg()[0], **loop})
            log(f"{name:<16} e{e:<3} batch-1 loop        {loop['faces_per_s']:>9.1f} faces/s")
        for b in batches:
            for name, be in built.items():
                cell = bench_cell(be.run, e, b, budget_s, frames=frames)
                cell["speedup_vs_loop"] = round(cell["faces_per_s"] / loops[name], 2)
                rows.append({"backend": name, "kind": "batch", "precision": be.describe()["precision"],
                             "load_avg_1m": os.getloadavg()[0], **cell})
                log(f"{name:<16} e{e:<3} batch {b:<5} {cell['faces_per_s']:>9.1f} faces/s  p50 {cell['p50_ms']:.1f} ms"
                    f"  p99 {cell['p99_ms']:.1f} ms  ({cell['runs']} runs)")
    order = {n: i for i, n in enumerate(backends)}
    rows.sort(key=lambda r: (order.get(r["backend"].split()[0], 99), r["backend"], r.get("entry", 0),
                             r.get("kind") != "loop", r.get("batch", 0)))
    return rows


def bench_e2e(clip: str | Path, backend: str = "auto", overrides: list[str] | None = None,
              models_dir: str | None = None, config: str | None = None, weights: str | None = None) -> dict:
    """Run the whole pipeline on `clip` with the chosen backend; real-time factor and per-stage seconds."""
    from ..core.config import load_config
    from ..io.sources import open_source
    from .build import Stages
    from .session import run_source

    cfg = load_config(config, overrides)
    cfg.enhance.backend = backend
    if weights:
        cfg.enhance.weights = weights
    with tempfile.TemporaryDirectory(prefix="bench_e2e_") as tmp:
        with open_source(str(clip), cfg.source) as src:
            stages = Stages(cfg, models_dir, progress=False)
            try:
                r = run_source(stages, src, Path(tmp))
            finally:
                stages.close()
    s = r.stats
    return {"clip": str(clip), "backend": r.generator["backend"] if r.generator else None, "frames": s.frames,
            "faces": s.faces, "tracks": s.tracks, "enhanced": s.enhanced, "wall_s": s.wall_s, "fps": s.fps,
            "realtime_factor": s.realtime_factor, "timings": r.timings}


# ------------------------------------------------------------------ fp16 vs fp32


def val_faces(folder: str | Path, limit: int = 0) -> np.ndarray:
    """(N,128,128,3) BGR: CelebA-aligned photos, centre square (face area) resized to 128."""
    import cv2

    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in {".jpg", ".png", ".jpeg"})
    out = []
    for p in paths[: limit or None]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            continue
        h, w = img.shape[:2]
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        out.append(cv2.resize(img[y0 : y0 + s, x0 : x0 + s], (CROP, CROP), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR (dB, 0–255) over (N,H,W,3)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return np.where(mse == 0, 100.0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)))


class _HalfStorage:
    """Every float32 op result rounded to fp16 (fp32 math inside each op): what an fp16 GPU engine stores.

    Emulates fp16 activations on a CPU at fp32 speed; torch's native CPU fp16 kernels are ~15× slower.
    """

    def __init__(self, dtype):
        import torch
        from torch.overrides import TorchFunctionMode

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                if isinstance(out, torch.Tensor) and out.dtype == torch.float32:
                    return out.to(dtype).float()
                return out

        self.mode = Mode()

    def __enter__(self):
        return self.mode.__enter__()

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


def precision_check(weights: str | Path, faces_dir: str | Path, limit: int = 0, native_limit: int = 16,
                    entries=ENTRIES, log: Callable[[str], None] = _LOG.info) -> dict:
    """PSNR to the originals of fp32 vs fp16/bf16 outputs on the val faces (no GPU needed).

    `emulated`: fp16/bf16 storage of every intermediate (see _HalfStorage) on all faces;
    `native`: torch's CPU fp16/bf16 kernels end to end on the first `native_limit` faces per entry.
    """
    import torch

    from ..stages.enhance.backends import postprocess, preprocess
    from ..stages.enhance.generator import load_generator

    model, meta = load_generator(weights)
    hr = val_faces(faces_dir, limit)
    res: dict = {"weights": str(weights), "weights_meta": {k: v for k, v in meta.items() if k != "arch"},
                 "faces": len(hr), "entries": {}}

    def run(m, lr, dtype=torch.float32, emulate=None):
        outs = []
        with torch.inference_mode():
            for i in range(0, len(lr), 32):
                x = preprocess(torch.from_numpy(lr[i : i + 32]), dtype)
                if emulate is not None:
                    with _HalfStorage(emulate):
                        y = m(x)
                else:
                    y = m(x)
                outs.append(postprocess(y).numpy())
        return np.concatenate(outs)

    for e in entries:
        lr = np.stack([cv2.resize(h, (e, e), interpolation=cv2.INTER_AREA) for h in hr])
        y32 = run(model, lr)
        row = {"psnr_fp32": round(float(_psnr(y32, hr).mean()), 4)}
        for name, dt in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
            rounded = load_generator(weights)[0]
            with torch.no_grad():  # weights are stored fp16 already; bf16 has fewer mantissa bits
                for prm in rounded.parameters():
                    prm.copy_(prm.to(dt).float())
            y = run(rounded, lr, emulate=dt)
            p = _psnr(y, hr)
            row[f"psnr_{name}_emulated"] = round(float(p.mean()), 4)
            row[f"delta_db_{name}_emulated"] = round(float(p.mean()) - row["psnr_fp32"], 4)
            row[f"max_abs_u8_{name}_emulated"] = int(np.abs(y.astype(int) - y32).max())
            row[f"psnr_{name}_vs_fp32_emulated"] = round(float(_psnr(y, y32).mean()), 2)
        if native_limit:
            n = min(native_limit, len(lr))
            for name, dt in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
                m = load_generator(weights)[0].to(dt)
                y = run(m, lr[:n], dt)
                d = float(_psnr(y, hr[:n]).mean() - _psnr(y32[:n], hr[:n]).mean())
                row[f"delta_db_{name}_native_{n}"] = round(d, 4)
                row[f"max_abs_u8_{name}_native_{n}"] = int(np.abs(y.astype(int) - y32[:n]).max())
        res["entries"][e] = row
        log(f"e{e}: " + "  ".join(f"{k} {v}" for k, v in row.items()))
    return res


# ------------------------------------------------------------------ report


def table(rows: list[dict]) -> str:
    """Markdown table of the generator cells."""
    lines = ["| backend | entry | batch | faces/s | p50 ms | p99 ms | × loop |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("kind") == "loop":
            lines.append(f"| {r['backend']} | {r['entry']} | 1 (loop) | {r['faces_per_s']} | | | 1.0 |")
        elif r.get("kind") == "batch":
            lines.append(f"| {r['backend']} | {r['entry']} | {r['batch']} | {r['faces_per_s']} | {r['p50_ms']} | "
                         f"{r['p99_ms']} | {r['speedup_vs_loop']} |")
        else:
            lines.append(f"| {r['backend']} | – | – | skipped: {r.get('skipped')} | | | |")
    return "\n".join(lines)


def host() -> dict:
    import platform

    import torch

    return {"cpu_count": os.cpu_count(), "load_avg": os.getloadavg(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def write_json(path: str | Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))
    return path
