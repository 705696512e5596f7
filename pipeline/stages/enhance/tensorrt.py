"""TensorRT 10 and 11: build a serialized engine per entry size from the ONNX export, cache it, run it.

Precision comes from the ONNX graph, on both major versions. TensorRT 11 removed weak typing
(`BuilderFlag.FP16` and the other precision flags are gone; every network is strongly typed), so an FP16
engine needs an FP16 graph: `cached_fp16_onnx` exports the generator cast to float16 (float32 input and
output, Casts inside) with the same exporter as the fp32 file (`export.cached_onnx`) and caches it beside
that file as `<fp32 name>_fp16.onnx`. TensorRT 10 builds from the same graph with
`NetworkDefinitionCreationFlag.STRONGLY_TYPED` (present since 10.0) instead of the FP16 builder flag,
which 10.12 deprecated: one precision model for both versions, no deprecated API, and the graph a
TensorRT engine computes is the one run on CPU in tests/test_tensorrt.py.

An engine is only valid for the GPU model, compute capability and TensorRT version that built it, and
for one set of weights and one optimization profile; all of them go into the file name
(`engine_name`), so a changed GPU/TRT/model builds a new engine and an unchanged one is reused.
Engines, their ONNX sources and the builder's timing cache (which makes rebuilds fast) share the cache
folder (`models.cache_dir`).

The runtime binds torch-allocated CUDA tensors (no pycuda needed) and enqueues on torch's current CUDA
stream with `execute_async_v3`.

What was verified, and where (no GPU and no TensorRT on the machine this was written on):
- executed on CPU (tests/test_tensorrt.py): the fp16 graph of the shipped weights (engines/*.safetensors)
  at every entry, run with onnxruntime against the fp32 export on random inputs; the generator's fp16
  arithmetic in torch against fp32; naming, cache reuse, profile checks.
- verified against the documented API surface, not executed: the builder and the runtime, run against
  stand-in `tensorrt` modules that expose the Python API of TensorRT 10.0, 10.16 and 11.1 as NVIDIA's
  bindings declare it (NVIDIA/TensorRT python/src/infer/pyCore.cpp, python/src/parsers/pyOnnx.cpp and
  include/NvInfer.h at tags v10.0.0, v10.16, v11.1) and the 10.x -> 11.x migration guide
  (docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api.html).
- never executed: a real engine build or inference on any TensorRT version.

TensorRT 10 -> 11, for the calls made here: `BuilderFlag.FP16` removed (not used);
`NetworkDefinitionCreationFlag.EXPLICIT_BATCH` removed and `STRONGLY_TYPED` renumbered from 1 to 0 and
made a no-op (always on), so the flag is computed from the enum, never hard-coded; `create_network`,
`build_serialized_network(network, config)`, the timing cache (`create_timing_cache`, `set_timing_cache`,
`get_timing_cache`, `serialize`), optimization profiles, `Runtime.deserialize_cuda_engine(bytes)`,
`get_tensor_mode/dtype/profile_shape`, `set_input_shape`, `set_tensor_address` and `execute_async_v3`
are unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...core.errors import EnhanceError
from .export import INPUT, OPSET, OUTPUT, default_cache

MIN_MAJOR = 10  # the name-based tensor API (execute_async_v3, set_input_shape) and STRONGLY_TYPED


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
                entry: int | tuple[int, ...], profile: Profile) -> str:
    """File name of an engine: everything that invalidates a serialized engine is part of it.

    >>> engine_name("ab"*32, "NVIDIA H100 80GB HBM3", (9, 0), "10.3.0", 16, Profile())
    'generator_abababababababab_e16_nvidia-h100-80gb-hbm3_sm90_trt10.3.0_b1-64-256_fp16.engine'
    """
    if isinstance(compute_capability, tuple):
        cc = f"{compute_capability[0]}{compute_capability[1]}"
    else:
        cc = str(compute_capability).replace(".", "")
    trt = re.sub(r"[^0-9A-Za-z.]+", "-", str(trt_version))
    from .export import shape_key

    return f"generator_{model_sha[:16]}_{shape_key(entry)}_{_slug(gpu_name)}_sm{_slug(cc)}_trt{trt}_{profile.tag()}.engine"


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


# ------------------------------------------------------------------ versions


def major_version(version: str) -> int | None:
    """Major version of a TensorRT version string ('11.1.0.106' -> 11), None when it is not one."""
    m = re.match(r"\s*(\d+)\.", str(version))
    return int(m.group(1)) if m else None


def _version_problem(version: str) -> str | None:
    major = major_version(version)
    if major is None:
        return f"tensorrt reports version {version!r}, which is not a TensorRT version"
    if major < MIN_MAJOR:
        return (f"tensorrt {version} found, 10 or 11 needed (name-based tensor API, execute_async_v3, "
                "strongly typed networks); pip install 'enhance-faces[gpu]'")
    return None


def _require(trt) -> int:
    """The major version of the imported `tensorrt` module; TensorRTError (one line) when it is too old."""
    version = str(getattr(trt, "__version__", "?"))
    problem = _version_problem(version)
    if problem:
        raise TensorRTError(problem)
    return major_version(version)


def _import_trt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TensorRTError(f"tensorrt not importable ({e}); install TensorRT 10 or 11 "
                            "(pip install 'enhance-faces[gpu]') on a CUDA machine") from None
    return trt, _require(trt)


def network_flags(trt, major: int) -> int:
    """`create_network` flags for a strongly typed network on this TensorRT.

    The bit is taken from the enum: STRONGLY_TYPED is 1 in TensorRT 10 (EXPLICIT_BATCH is 0) and 0 in
    TensorRT 11 (EXPLICIT_BATCH removed), where it is deprecated and ignored because every network is
    strongly typed. A hard-coded `1 << 1` would ask TensorRT 11 for PREFER_JIT_PYTHON_PLUGINS instead.
    """
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        if major >= 11:
            return 0  # strong typing is the only mode
        raise TensorRTError(f"tensorrt {trt.__version__} has no NetworkDefinitionCreationFlag.STRONGLY_TYPED")
    return 1 << int(flag)


def available() -> tuple[bool, str]:
    """TensorRT 10+ importable and a CUDA device present (torch's view of it)."""
    try:
        import tensorrt as trt
    except ImportError as e:
        return False, (f"tensorrt not importable ({e}); install TensorRT 10 or 11 (pip install 'enhance-faces[gpu]') "
                       "on a CUDA machine")
    problem = _version_problem(str(getattr(trt, "__version__", "?")))
    if problem:
        return False, problem
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


# ------------------------------------------------------------------ the fp16 graph


def onnx_precision(path: str | Path) -> str:
    """'fp16' when the graph's float weights are float16, else 'fp32' (what a strongly typed build gets)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    kinds = {t.data_type for t in proto.graph.initializer}
    if onnx.TensorProto.FLOAT16 in kinds and onnx.TensorProto.FLOAT not in kinds:
        return "fp16"
    return "fp32"


def fp16_onnx_path(fp32_path: str | Path) -> Path:
    """Where the fp16 graph of an fp32 export is cached: beside it, same name plus `_fp16`."""
    p = Path(fp32_path)
    return p.with_name(f"{p.stem}_fp16{p.suffix}")


def _float16_generator(model):
    """`model` in float16 behind float32 input and output: the engine's I/O stays float32, the work is fp16."""
    import copy

    import torch

    class Float16Generator(torch.nn.Module):
        def __init__(self, g) -> None:
            super().__init__()
            self.g = copy.deepcopy(g).half()  # the caller's model stays float32

        def forward(self, x):
            return self.g(x.half()).float()

    return Float16Generator(model).eval()


def cached_fp16_onnx(weights: str | Path, entry: int | tuple[int, ...], cache_dir: str | Path | None = None,
                     opset: int = OPSET, model=None, weights_sha: str | None = None) -> Path:
    """The fp16 graph for these weights and entry (or fused input shape), exported on first use and reused.

    Made by the project's own exporter (`export.export_onnx`, torch's dynamo exporter, already a
    dependency) from the generator cast to float16, with Casts at the float32 input and output; cached
    beside the fp32 export as `<fp32 name>_fp16.onnx`, so it is keyed by weights hash, entry and opset like
    it. Chosen over converting the fp32 file with onnxconverter-common (not a dependency of this project;
    last release 2025-08 with Cast regressions open) or NVIDIA ModelOpt AutoCast, which the TensorRT 11
    guide suggests (`nvidia-modelopt[onnx]` pins onnx~=1.21 and onnxruntime-gpu and pulls cupy, and its
    data-driven per-node choice buys nothing for this all-convolution generator).
    """
    from ...core.models import sha256
    from .export import export_onnx, onnx_name

    weights = Path(weights)
    digest = weights_sha or sha256(weights)
    path = fp16_onnx_path(Path(cache_dir or default_cache()) / onnx_name(digest, entry, opset))
    if path.is_file() and path.stat().st_size > 0:
        return path
    if model is None:
        from .export import load_any

        model = load_any(weights)
    return export_onnx(_float16_generator(model), entry, path, opset,
                       meta={"weights_sha256": digest, "weights": weights.name, "precision": "fp16",
                             "layout": "NCHW RGB float32 in [-1,1] (computed in float16)"})


# ------------------------------------------------------------------ build


def build_engine(onnx_path: str | Path, out: str | Path, entry: int | tuple[int, ...], profile: Profile = Profile(),
                 timing_cache: str | Path | None = None, workspace_gb: float = 4.0) -> Path:
    """Parse the ONNX file into a strongly typed network and write a serialized engine with one
    optimization profile (TensorRT 10 and 11).

    The graph decides the precision, so `onnx_path` must be the fp16 graph (`cached_fp16_onnx`) for an
    fp16 profile and the fp32 export for an fp32 one; a mismatch is refused rather than silently building
    an engine of the other precision under this profile's name.
    """
    trt, major = _import_trt()
    want = "fp16" if profile.fp16 else "fp32"
    got = onnx_precision(onnx_path)
    if got != want:
        raise TensorRTError(f"{Path(onnx_path).name} is an {got} graph but the profile asks for {want}: "
                            f"strongly typed engines take their precision from the ONNX"
                            f"{' (use cached_fp16_onnx)' if profile.fp16 else ''}")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, major))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    # no precision flag: strongly typed networks refuse them (10) or they no longer exist (11)
    opt = builder.create_optimization_profile()
    from .export import input_shape

    shape = input_shape(entry)  # (3,e,e), or (K,4,e,e) for K fused observations
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


def ensure_engines(weights: str | Path, entries: tuple = (16, 32, 64), profile: Profile = Profile(),
                   cache_dir: str | Path | None = None, log: Callable[[str], None] = lambda s: None,
                   model=None) -> dict:
    """`enhance-faces build-engine`: export ONNX (and its fp16 graph) and build (or reuse) one engine per entry
    (an entry size, or a fused input shape (K,4,e,e)); keyed as given."""
    ok, why = available()
    if not ok:
        raise TensorRTError(why)
    from ...core.models import sha256
    from .export import cached_onnx

    cache_dir = Path(cache_dir or default_cache())
    digest = sha256(weights)
    gpu, cc, version = device_key()
    out: dict = {}
    for e in entries:
        graph = cached_fp16_onnx if profile.fp16 else cached_onnx
        onnx_path = graph(weights, e, cache_dir, model=model, weights_sha=digest)
        path = cache_dir / engine_name(digest, gpu, cc, version, e, profile)
        timing = cache_dir / f"timing_{_slug(gpu)}_sm{cc[0]}{cc[1]}_trt{version}.cache"
        path, built = cached_engine(path, lambda tmp, e=e, o=onnx_path: build_engine(o, tmp, e, profile, timing))
        log(f"{'built ' if built else 'reused'} {path}")
        out[e] = path
    return out


# ------------------------------------------------------------------ run


class TensorRTEngine:
    """One deserialized engine: `__call__(x)` on a CUDA float32 (B,3,e,e) tensor → (B,3,128,128)."""

    def __init__(self, path: str | Path) -> None:
        import torch

        trt, _ = _import_trt()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise TensorRTError(f"cannot deserialize {path} (built by another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if set(names) != {INPUT, OUTPUT}:
            raise TensorRTError(f"{path}: expected tensors {INPUT!r} and {OUTPUT!r}, found {names}")
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        if modes[INPUT] != trt.TensorIOMode.INPUT or modes[OUTPUT] != trt.TensorIOMode.OUTPUT:
            raise TensorRTError(f"{path}: {INPUT!r} must be the input and {OUTPUT!r} the output, found {modes}")
        self.in_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(INPUT))
        self.out_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(OUTPUT))
        lo, _, hi = self.engine.get_tensor_profile_shape(INPUT, 0)
        self.min_batch, self.max_batch = int(lo[0]), int(hi[0])
        self.torch = torch
        self.stream = lambda: torch.cuda.current_stream().cuda_stream  # the handle execute_async_v3 gets

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
            if not self.context.execute_async_v3(self.stream()):
                raise TensorRTError("TensorRT execute_async_v3 failed")
            outs.append(y[:n])
        return torch.cat(outs) if len(outs) > 1 else outs[0]


def _torch_dtype(trt, dt):
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.bfloat16: torch.bfloat16}
    if dt not in table:
        raise TensorRTError(f"engine tensor type {dt} is not float32/float16/bfloat16")
    return table[dt]
