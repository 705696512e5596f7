"""TensorRT 10: build a serialized FP16 engine per entry size from the ONNX export, cache it, run it.

An engine is only valid for the GPU model, compute capability and TensorRT version that built it, and
for one set of weights and one optimization profile; all of them go into the file name
(`engine_name`), so a changed GPU/TRT/model builds a new engine and an unchanged one is reused.
The builder's timing cache is kept beside it in engines/cache/ to make rebuilds fast.

The runtime binds torch-allocated CUDA tensors (no pycuda needed) and enqueues on torch's current CUDA
stream with `execute_async_v3`.

NOT EXECUTED in the environment this was written in (no GPU, TensorRT not installable): the builder and
runtime follow the TensorRT 10 Python API; the pure parts (naming, cache reuse, profile checks) are tested.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import EnhanceError
from .export import CACHE, INPUT, OUTPUT

ENGINES = CACHE.parent


class TensorRTError(EnhanceError):
    """TensorRT missing, too old, or an engine failed to build/load."""


@dataclass(frozen=True)
class Profile:
    """Optimization profile on the batch axis (TensorRT tunes kernels for `opt`) and the precision."""

    min: int = 1
    opt: int = 64
    max: int = 256
    fp16: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ValueError(f"profile needs 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}")

    def tag(self) -> str:
        return f"b{self.min}-{self.opt}-{self.max}_{'fp16' if self.fp16 else 'fp32'}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "unknown"


def engine_name(model_sha: str, gpu_name: str, compute_capability: tuple[int, int] | str, trt_version: str,
                entry: int, profile: Profile) -> str:
    """File name of an engine: everything that invalidates a serialized engine is part of it.

    >>> engine_name("ab"*32, "NVIDIA H100 80GB HBM3", (9, 0), "10.3.0", 16, Profile())
    'generator_abababababababab_e16_nvidia-h100-80gb-hbm3_sm90_trt10.3.0_b1-64-256_fp16.engine'
    """
    if isinstance(compute_capability, tuple):
        cc = f"{compute_capability[0]}{compute_capability[1]}"
    else:
        cc = str(compute_capability).replace(".", "")
    trt = re.sub(r"[^0-9A-Za-z.]+", "-", str(trt_version))
    return f"generator_{model_sha[:16]}_e{entry}_{_slug(gpu_name)}_sm{_slug(cc)}_trt{trt}_{profile.tag()}.engine"


def cached_engine(path: Path, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Reuse `path` when it exists, else call `build(tmp)` and rename it into place; (path, built)."""
    if path.is_file() and path.stat().st_size > 0:
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        build(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, True


def available() -> tuple[bool, str]:
    """TensorRT 10+ importable and a CUDA device present (torch's view of it)."""
    try:
        import tensorrt as trt
    except ImportError as e:
        return False, f"tensorrt not importable ({e}); install TensorRT 10 (pip install tensorrt) on a CUDA machine"
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        return False, f"tensorrt {trt.__version__} found, 10 or newer needed (execute_async_v3 / set_input_shape API)"
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a hard dependency
        return False, f"torch missing: {e}"
    if not torch.cuda.is_available():
        return False, "no CUDA device visible to torch"
    return True, f"tensorrt {trt.__version__} on {torch.cuda.get_device_name(0)}"


def device_key() -> tuple[str, tuple[int, int], str]:
    """(GPU name, compute capability, TensorRT version) of this machine."""
    import tensorrt as trt
    import torch

    return torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0), trt.__version__


def build_engine(onnx_path: str | Path, out: str | Path, entry: int, profile: Profile = Profile(),
                 timing_cache: str | Path | None = None, workspace_gb: float = 4.0) -> Path:
    """Parse the ONNX file and write a serialized engine with one optimization profile (TensorRT 10 API)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TRT 10: explicit batch is the only mode; flag 0
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if profile.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    opt = builder.create_optimization_profile()
    shape = (3, entry, entry)
    opt.set_shape(INPUT, (profile.min, *shape), (profile.opt, *shape), (profile.max, *shape))
    config.add_optimization_profile(opt)
    cache_path = Path(timing_cache) if timing_cache else None
    blob = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache = config.create_timing_cache(blob)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    out = Path(out)
    out.write_bytes(memoryview(serialized))
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return out


def ensure_engines(weights: str | Path, entries: tuple[int, ...] = (16, 32, 64), profile: Profile = Profile(),
                   cache_dir: str | Path | None = None, log: Callable[[str], None] = lambda s: None) -> dict[int, Path]:
    """`run.py build-engine`: export ONNX and build (or reuse) one engine per entry; {entry: path}."""
    ok, why = available()
    if not ok:
        raise TensorRTError(why)
    from ..models import sha256
    from .export import cached_onnx

    cache_dir = Path(cache_dir or CACHE)
    digest = sha256(weights)
    gpu, cc, version = device_key()
    out: dict[int, Path] = {}
    for e in entries:
        onnx_path = cached_onnx(weights, e, cache_dir, weights_sha=digest)
        path = cache_dir.parent / engine_name(digest, gpu, cc, version, e, profile)
        timing = cache_dir / f"timing_{_slug(gpu)}_sm{cc[0]}{cc[1]}_trt{version}.cache"
        path, built = cached_engine(path, lambda tmp, e=e, o=onnx_path: build_engine(o, tmp, e, profile, timing))
        log(f"{'built ' if built else 'reused'} {path}")
        out[e] = path
    return out


class TensorRTEngine:
    """One deserialized engine: `__call__(x)` on a CUDA float32 (B,3,e,e) tensor → (B,3,128,128)."""

    def __init__(self, path: str | Path) -> None:
        import tensorrt as trt
        import torch

        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise TensorRTError(f"cannot deserialize {path} (built by another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if set(names) != {INPUT, OUTPUT}:
            raise TensorRTError(f"{path}: expected tensors {INPUT!r} and {OUTPUT!r}, found {names}")
        self.in_dtype = _torch_dtype(self.engine.get_tensor_dtype(INPUT))
        self.out_dtype = _torch_dtype(self.engine.get_tensor_dtype(OUTPUT))
        lo, _, hi = self.engine.get_tensor_profile_shape(INPUT, 0)
        self.min_batch, self.max_batch = int(lo[0]), int(hi[0])
        self.torch = torch

    def __call__(self, x):
        torch = self.torch
        outs = []
        for i in range(0, x.shape[0], self.max_batch):  # larger batches than the profile: in slices
            xi = x[i : i + self.max_batch].to(self.in_dtype).contiguous()
            n = xi.shape[0]
            if n < self.min_batch:
                xi = torch.cat([xi, xi[-1:].expand(self.min_batch - n, *xi.shape[1:])])
            y = torch.empty((xi.shape[0], 3, 128, 128), dtype=self.out_dtype, device=xi.device)
            self.context.set_input_shape(INPUT, tuple(xi.shape))
            self.context.set_tensor_address(INPUT, xi.data_ptr())
            self.context.set_tensor_address(OUTPUT, y.data_ptr())
            if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
                raise TensorRTError("TensorRT execute_async_v3 failed")
            outs.append(y[:n])
        return torch.cat(outs) if len(outs) > 1 else outs[0]


def _torch_dtype(dt):
    import tensorrt as trt
    import torch

    return {trt.float32: torch.float32, trt.float16: torch.float16, trt.bfloat16: torch.bfloat16}[dt]
