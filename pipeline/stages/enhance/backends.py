"""Interchangeable generator backends behind one interface, and the choice among them.

Every backend takes aligned low-res crops as uint8 BGR (B,e,e,3) and returns uint8 BGR (B,128,128,3):
the conversion to the generator's RGB [-1,1] NCHW floats and back lives in `preprocess`/`postprocess`
only (torch ops, so the CUDA backends convert on the device and move 4× fewer bytes).

`auto` picks the first available of tensorrt > torch-cuda > onnxruntime (only with a GPU execution
provider) > torch-cpu > onnxruntime on CPU; the `device` setting keeps only the CPU or only the GPU ones.
On the 2-core CPU this was written on, onnxruntime-CPU and torch-cpu measured within noise of each other,
and onnxruntime first needs a ~7 s per-entry ONNX export, so torch-cpu is preferred there.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol, get_args, runtime_checkable

import numpy as np
import torch

from ...core.config import CpuPrecision
from ...core.devices import GPU_PROVIDERS, TENSORRT, Device, cpu_bf16
from ...core.errors import EnhanceError
from ...core.geometry import CROP, ENTRIES
from ...core.models import cache_dir as default_cache
from .pixels import Uint8Net, _check, item_shapes, model_input, postprocess, preprocess

AUTO_ORDER = ("tensorrt", "torch-cuda", "onnxruntime-gpu", "torch-cpu", "onnxruntime")
GPU_BACKENDS = ("tensorrt", "torch-cuda", "onnxruntime-gpu")


class BackendUnavailable(EnhanceError):
    """A requested backend cannot run here; the message says why."""


@runtime_checkable
class Backend(Protocol):
    name: str

    def run(self, lr: np.ndarray) -> np.ndarray:
        """uint8 BGR (B,e,e,3), one entry size per call → uint8 BGR (B,128,128,3)."""
        ...

    def describe(self) -> dict:
        """What ran (for the manifest): backend, device, precision, artifact paths."""
        ...


# ------------------------------------------------------------------ backends


CPU_PRECISIONS: tuple[str, ...] = get_args(CpuPrecision)


@dataclass
class Request:
    """What `create` asks of a backend: the weights (and the network already loaded from them), the device,
    the item shapes to prepare up front, the largest batch, and each backend's own options."""

    weights: Path
    digest: str
    device: Device
    model: torch.nn.Module | None = None
    threads: int = 0
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    max_batch: int = 256
    cpu_precision: str = "auto"
    cuda_compile: str = "off"
    options: dict = field(default_factory=dict)

    def network(self) -> torch.nn.Module:
        from .generator import load_generator

        return self.model if self.model is not None else load_generator(self.weights)[0]


class TorchCPU:
    """The generator in eager torch on the CPU, channels_last (oneDNN's fast layout; bit-identical output).

    `precision` bf16 runs the convolutions in bf16 under autocast while the bicubic base each head adds its
    residual to, and the sum, stay fp32; `auto` takes bf16 where the CPU multiplies bf16 natively, where it
    is faster than fp32 at a negligible change in the outputs (benchmarks/generator-cpu). `dtype` casts the
    whole model instead, for the precision grid of `gpu_bench`.
    """

    name = "torch-cpu"

    def __init__(self, model: torch.nn.Module, threads: int = 0, dtype: torch.dtype = torch.float32,
                 precision: str = "auto") -> None:
        if precision not in CPU_PRECISIONS:
            raise ValueError(f"precision must be one of {CPU_PRECISIONS}, got {precision!r}")
        model = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
        self.net = Uint8Net(model.eval().to(memory_format=torch.channels_last), dtype)
        self.dtype, self.threads = dtype, threads
        self.autocast = dtype == torch.float32 and (precision == "bf16" or precision == "auto" and cpu_bf16()[0])

    @classmethod
    def build(cls, r: Request) -> TorchCPU:
        return cls(r.network(), r.threads, precision=r.cpu_precision, **r.options)

    @staticmethod
    def available() -> tuple[bool, str]:
        native, units = cpu_bf16()
        return True, f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 {'native: ' * native}{units}"

    @torch.inference_mode()
    def run(self, lr: np.ndarray) -> np.ndarray:
        with _threads(self.threads), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            return self.net(torch.from_numpy(_check(lr))).numpy()

    def describe(self) -> dict:
        precision = "bf16 autocast" if self.autocast else str(self.dtype).replace("torch.", "")
        return {"backend": self.name, "device": "cpu", "precision": precision,
                "threads": self.threads or torch.get_num_threads()}


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count for one call, then back: the count is process-wide, a backend's is not."""
    old = torch.get_num_threads()
    if not n or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# enhance.cuda_compile → torch.compile's mode inside torch-cuda's own CUDA graphs (figures per mode:
# benchmarks/generator-gpu).
CUDA_COMPILE: dict[str, str | None] = {"off": None, "default": "default",
                                       "max-autotune": "max-autotune-no-cudagraphs"}


class TorchCUDA:
    """fp16 (or bf16), channels_last, one CUDA graph per (item shape, padded batch) holding the uint8 → uint8
    path (`Uint8Net`); pinned host buffers kept across calls. A call larger than `max_batch` (the largest graph
    bucket) runs in chunks, pipelined: chunk k+1 uploads and computes while chunk k downloads, and the host
    copies chunk k out of the pinned buffer while the device works on the later ones (docs/gpu.md says where
    it ran). `jit`: a `torch.compile` mode (`CUDA_COMPILE`'s values), compiled in-process under the
    same CUDA graphs, in place of an AOTInductor package, whose `aoti_load_package` crashed on load.
    """

    name = "torch-cuda"

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype = torch.float16, graphs: bool = True,
                 jit: str | None = None, max_batch: int = 256) -> None:
        ok, why = self.available()
        if not ok:
            raise BackendUnavailable(f"torch-cuda: {why}")
        self.device = torch.device("cuda")
        self.dtype = dtype
        model = copy.deepcopy(model).eval().to(self.device, dtype).to(memory_format=torch.channels_last)
        self.net = Uint8Net(model, dtype).eval()
        self.graphs_on = graphs
        self._jit = jit
        self.buckets = tuple(2**i for i in range(max_batch.bit_length()) if 2**i <= max_batch)
        # batch dynamic from its 2nd size; "max-autotune-no-cudagraphs" tunes Triton convolutions (80 s per shape)
        self._fn = torch.compile(self.net, mode=jit) if jit else self.net
        self._pinned: dict[str, torch.Tensor] = {}  # host buffers kept across calls: pinning costs more than copying
        self.upload, self.download = torch.cuda.Stream(), torch.cuda.Stream()
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def build(cls, r: Request) -> TorchCUDA:
        if r.device.kind == "cuda":
            torch.cuda.set_device(r.device.index)
        return cls(r.network(), jit=CUDA_COMPILE[r.cuda_compile], **r.options)

    @staticmethod
    def available() -> tuple[bool, str]:
        if not torch.cuda.is_available():
            return False, f"no CUDA device (torch {torch.__version__}{' CPU-only build' if not torch.version.cuda else ''})"
        return True, f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"

    def graph(self, item: tuple[int, ...], n: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        """The captured uint8 → uint8 graph for `n` items of shape `item`, with its static input and output."""
        key = (item, n)
        if key not in self._graphs:
            static_in = torch.zeros(n, *item, device=self.device, dtype=torch.uint8)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up outside capture (compilation, cuDNN's choice, the allocator)
                    self._fn(static_in)
            torch.cuda.current_stream().wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                static_out = self._fn(static_in)
            self._graphs[key] = (g, static_in, static_out)
        return self._graphs[key]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 items on the device → uint8 faces in a tensor of this call's own (the graph's output is reused)."""
        if not self.graphs_on:
            return self._fn(x)
        n = x.shape[0]
        g, static_in, static_out = self.graph(tuple(x.shape[1:]), next(b for b in self.buckets if b >= n))
        static_in[:n].copy_(x)
        g.replay()
        return static_out[:n].clone()  # 50 MB per 1024 faces at device bandwidth: ~25 µs

    def _host(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A pinned uint8 host buffer of `shape`, grown when a call needs more and reused by the next."""
        need = int(np.prod(shape))
        if name not in self._pinned or self._pinned[name].numel() < need:
            self._pinned[name] = torch.empty(need, dtype=torch.uint8).pin_memory()
        return self._pinned[name][:need].view(shape)

    @torch.inference_mode()
    def run(self, lr: np.ndarray) -> np.ndarray:
        lr = _check(lr)
        chunk = self.buckets[-1]
        host_in = self._host("in", lr.shape)
        host_in.copy_(torch.from_numpy(lr))
        host_out = self._host("out", (lr.shape[0], CROP, CROP, 3))
        out = np.empty((lr.shape[0], CROP, CROP, 3), np.uint8)
        compute = torch.cuda.current_stream()
        done = []
        for i in range(0, lr.shape[0], chunk):
            with torch.cuda.stream(self.upload):
                dev = host_in[i : i + chunk].to(self.device, non_blocking=True)
            compute.wait_stream(self.upload)
            dev.record_stream(compute)
            y = self._forward(dev)
            self.download.wait_stream(compute)
            with torch.cuda.stream(self.download):
                host_out[i : i + y.shape[0]].copy_(y, non_blocking=True)
                ev = torch.cuda.Event()
                ev.record()
            y.record_stream(self.download)
            done.append((i, y.shape[0], ev))
        for i, n, ev in done:  # chunk k leaves the pinned buffer while the device works on chunk k+1…
            ev.synchronize()
            out[i : i + n] = host_out[i : i + n].numpy()
        return out

    def describe(self) -> dict:
        return {"backend": self.name, "device": torch.cuda.get_device_name(0),
                "precision": str(self.dtype).replace("torch.", ""), "cuda_graphs": self.graphs_on,
                "torch_compile": self._jit}


class OnnxRuntime:
    """onnxruntime with the best execution provider for `device` (TensorRT > CUDA > CPU), one session per entry.

    The per-entry ONNX files are exported on first use into the cache folder and reused by weights hash.
    TensorRT's provider gets fp16, its engine and timing caches in the cache folder (a second run loads
    them) and a batch profile of 1…`max_batch` (the batcher's batch size, twice it when mirrored); larger calls run in slices.
    """

    name = "onnxruntime"

    def __init__(self, weights: str | Path, model: torch.nn.Module | None = None, threads: int = 0,
                 weights_sha: str | None = None, cache_dir: str | Path | None = None, device: str = "auto",
                 max_batch: int = 256, shapes: list[tuple[int, ...]] = ()) -> None:
        ok, why = self.available()
        if not ok:
            raise BackendUnavailable(f"onnxruntime: {why}")
        self.weights, self.model, self.threads = Path(weights), model, threads
        self.sha, self.cache_dir = weights_sha, cache_dir
        self.device, self.max_batch = Device.of(device), max_batch
        self.providers, self.why = ["CPUExecutionProvider"], ""
        self._sessions: dict[tuple[int, ...], object] = {}
        self.files: dict[str, str] = {}
        for shape in shapes:  # export/load up front, so the first frame does not pay for it
            self._session(tuple(shape))

    @classmethod
    def build(cls, r: Request) -> OnnxRuntime:
        return cls(r.weights, r.model, r.threads, r.digest, device=r.device, max_batch=r.max_batch, shapes=r.shapes,
                   **r.options)

    @staticmethod
    def available() -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError as e:
            return False, f"onnxruntime not importable ({e})"
        from .export import export_available

        ok, why = export_available()
        if not ok:
            return False, why
        return True, f"onnxruntime {ort.__version__}, providers {', '.join(ort.get_available_providers())}"

    def _session(self, item: tuple[int, ...]):
        """The session for one item shape: (e,e,3), or (K,e,e,4) for K fused observations."""
        if item not in self._sessions:
            from ...core.devices import session, tensorrt_options
            from .export import INPUT, cached_onnx, shape_key

            shape = model_input(item)
            path = cached_onnx(self.weights, shape, self.cache_dir, model=self.model, weights_sha=self.sha)
            trt = tensorrt_options(Path(self.cache_dir or default_cache()), INPUT, shape, 1,
                                   self.max_batch, self.max_batch)
            self._sessions[item], choice = session(path, self.device, self.threads, trt, f"generator {shape_key(shape)}")
            self.providers, self.why = choice.names, choice.why
            self.files["x".join(map(str, item))] = str(path)
        return self._sessions[item]

    def run(self, lr: np.ndarray) -> np.ndarray:
        lr = _check(lr)
        sess = self._session(tuple(lr.shape[1:]))
        step = max(1, self.max_batch if self.providers[0] == TENSORRT else len(lr))  # within the profile
        ys = [sess.run(None, {"lr": preprocess(torch.from_numpy(lr[i : i + step])).numpy()})[0]
              for i in range(0, len(lr), step)]
        return postprocess(torch.from_numpy(np.concatenate(ys))).numpy()

    def describe(self) -> dict:
        return {"backend": self.name, "device": self.providers[0], "providers": self.providers, "why": self.why,
                "precision": "fp16" if self.providers[0] == TENSORRT else "float32", "onnx": self.files}


class TensorRT:
    """TensorRT 10 or 11 engines (strongly typed, fp16 by default; one per entry) built by `enhance-faces build-engine`
    or on first use."""

    name = "tensorrt"

    def __init__(self, weights: str | Path, profile=None, cache_dir: str | Path | None = None,
                 shapes: list[tuple[int, ...]] = (), model: torch.nn.Module | None = None) -> None:
        from . import tensorrt as trt_mod

        ok, why = trt_mod.available()
        if not ok:
            raise BackendUnavailable(f"tensorrt: {why}")
        inputs = [model_input(tuple(s)) for s in (shapes or item_shapes(ENTRIES))]
        self.paths = trt_mod.ensure_engines(weights, inputs, profile or trt_mod.Profile(), cache_dir, model=model)
        self.engines = {shape: trt_mod.TensorRTEngine(p) for shape, p in self.paths.items()}

    @classmethod
    def build(cls, r: Request) -> TensorRT:
        if r.device.kind == "cuda":
            torch.cuda.set_device(r.device.index)
        return cls(r.weights, shapes=r.shapes, model=r.model, **r.options)

    @staticmethod
    def available() -> tuple[bool, str]:
        from . import tensorrt as trt_mod

        return trt_mod.available()

    @torch.inference_mode()
    def run(self, lr: np.ndarray) -> np.ndarray:
        lr = _check(lr)
        dev = torch.from_numpy(lr).pin_memory().to("cuda", non_blocking=True)
        x = preprocess(dev)
        y = postprocess(self.engines[tuple(x.shape[1:])](x))
        return y.cpu().numpy()

    def describe(self) -> dict:
        return {"backend": self.name, "device": torch.cuda.get_device_name(0), "precision": "fp16",
                "engines": {"x".join(map(str, s)): str(p) for s, p in self.paths.items()}}


BACKENDS: dict[str, type] = {"tensorrt": TensorRT, "torch-cuda": TorchCUDA, "onnxruntime": OnnxRuntime,
                             "torch-cpu": TorchCPU}


def availability() -> dict[str, tuple[bool, str]]:
    """{backend: (available, why)} without building anything."""
    out = {}
    for name, cls in BACKENDS.items():
        try:
            out[name] = cls.available()
        except Exception as e:  # a broken install must show up in doctor, not crash it
            out[name] = (False, f"{type(e).__name__}: {e}")
    return out


def resolve(name: str, found: dict[str, tuple[bool, str]] | None = None, device: str | Device = "auto") -> list[str]:
    """The backends to try, in order, for a config value (`auto` or one name) on `device`."""
    if name != "auto" and name not in BACKENDS:
        raise BackendUnavailable(f"unknown enhance backend {name!r} (known: auto, {', '.join(BACKENDS)})")
    kind = Device.of(device).kind
    found = found if found is not None else availability()
    if name == "auto":
        ort_gpu = found["onnxruntime"][0] and any(p in found["onnxruntime"][1] for p in GPU_PROVIDERS)
        order = [n for n in AUTO_ORDER if n != ("onnxruntime" if ort_gpu and kind != "cpu" else "onnxruntime-gpu")]
        order = [n for n in order if kind == "auto" or (n in GPU_BACKENDS) == (kind == "cuda")]
        picked = [n.replace("-gpu", "") for n in order if found[n.replace("-gpu", "")][0]]
        if not picked and kind == "cuda":
            why = "; ".join(f"{n}: {found[n][1]}" for n in ("tensorrt", "torch-cuda", "onnxruntime"))
            raise BackendUnavailable(f"device {device}: no generator backend can use a GPU here ({why})")
        return picked
    if kind == "cpu" and name in GPU_BACKENDS or kind == "cuda" and name == "torch-cpu":
        raise BackendUnavailable(f"enhance backend {name!r} cannot run on device {device!r}")
    ok, why = found[name]
    if not ok:
        raise BackendUnavailable(f"enhance backend {name!r} is unavailable: {why}")
    return [name]


def create(name: str, weights: str | Path, model: torch.nn.Module | None = None, threads: int = 0,
           weights_sha: str | None = None, shapes: list[tuple[int, ...]] = (), device: str | Device = "auto",
           max_batch: int = 256, cpu_precision: str = "auto", cuda_compile: str = "off", **kw) -> Backend:
    """Build the backend `name` (or, for `auto`, the first one that builds) for these weights on `device`
    (`cuda:N` makes N torch's current CUDA device, for torch-cuda and tensorrt).

    With `auto` a backend that is present but fails to build (e.g. the ONNX export fails) is skipped
    with its reason kept in the error if none builds; a named backend fails loudly. `cpu_precision` is
    torch-cpu's (`TorchCPU`), `cuda_compile` torch-cuda's (`CUDA_COMPILE`).
    """
    from ...core.models import sha256

    weights = Path(weights)
    d = Device.of(device)
    request = Request(weights, weights_sha or sha256(weights), d, model, threads, list(shapes), max_batch,
                      cpu_precision, cuda_compile, kw)
    failures = []
    for n in resolve(name, device=d):
        try:
            return BACKENDS[n].build(request)
        except EnhanceError as e:
            if name != "auto":
                raise
            failures.append(f"{n}: {e}")
    raise BackendUnavailable("no enhance backend could be built: " + "; ".join(failures))
