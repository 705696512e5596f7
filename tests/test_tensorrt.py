"""TensorRT 10 and 11: the builder and runtime against stand-in `tensorrt` modules, the fp16 ONNX for real.

TensorRT cannot be installed here and there is no GPU. The builder/runtime tests are therefore verified
against the documented API surface, not executed: each stand-in module below exposes exactly the
attributes our code could reach in one TensorRT release, with pybind's argument names, and nothing else,
so a call that release lacks raises AttributeError/TypeError as the real bindings would. Each surface
names its source:

- PYCORE@tag  = NVIDIA/TensorRT python/src/infer/pyCore.cpp at that git tag (the Python bindings)
- PYONNX@tag  = NVIDIA/TensorRT python/src/parsers/pyOnnx.cpp at that tag
- NVINFER@tag = NVIDIA/TensorRT include/NvInfer.h at that tag (enum values)
- REMOVED_11  = https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html
- MIGRATE_11  = https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-patterns.html

The fp16 graph is executed: it is exported from the shipped weights, runs on CPU onnxruntime and matches
the fp32 export.
"""

from __future__ import annotations

import ctypes
import enum
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.stages.enhance import tensorrt as T
from pipeline.stages.enhance.export import INPUT, OUTPUT, cached_onnx
from pipeline.stages.enhance.generator import DEFAULT_WEIGHTS, ProgressiveGenerator, load_generator, save_generator
from pipeline.stages.enhance.tensorrt import Profile, TensorRTError

pytestmark = pytest.mark.slow  # ONNX exports of the generator: the full suite, not the fast lane

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [DEFAULT_WEIGHTS]  # the generator runs use; the other files in engines/ are recipes' starting points
ENTRIES = (16, 32, 64)

# ------------------------------------------------------------------ recorded API surfaces

# BuilderFlag members and values. Names: PYCORE@tag `py::enum_<BuilderFlag>`; values: NVINFER@tag
# `enum class BuilderFlag` (the 11 values are renumbered: never hard-code them).
_FLAGS_10_0 = dict(FP16=0, INT8=1, DEBUG=2, GPU_FALLBACK=3, REFIT=4, DISABLE_TIMING_CACHE=5, TF32=6,
                   SPARSE_WEIGHTS=7, SAFETY_SCOPE=8, OBEY_PRECISION_CONSTRAINTS=9, PREFER_PRECISION_CONSTRAINTS=10,
                   DIRECT_IO=11, REJECT_EMPTY_ALGORITHMS=12, VERSION_COMPATIBLE=13, EXCLUDE_LEAN_RUNTIME=14, FP8=15,
                   ERROR_ON_TIMING_CACHE_MISS=16, BF16=17, DISABLE_COMPILATION_CACHE=18, STRIP_PLAN=19,
                   WEIGHTLESS=19, REFIT_IDENTICAL=20, WEIGHT_STREAMING=21)
_FLAGS_10_16 = dict(_FLAGS_10_0, INT4=22, REFIT_INDIVIDUAL=23, STRICT_NANS=24, MONITOR_MEMORY=25, FP4=26,
                    EDITABLE_TIMING_CACHE=27, DISTRIBUTIVE_INDEPENDENCE=28)  # FP16 etc. deprecated in 10.12
_FLAGS_11_1 = dict(DEBUG=2, GPU_FALLBACK=3, REFIT=4, DISABLE_TIMING_CACHE=5, TF32=6, SPARSE_WEIGHTS=7,
                   SAFETY_SCOPE=8, DIRECT_IO=11, VERSION_COMPATIBLE=12, EXCLUDE_LEAN_RUNTIME=13,
                   ERROR_ON_TIMING_CACHE_MISS=15, DISABLE_COMPILATION_CACHE=17, STRIP_PLAN=18, REFIT_IDENTICAL=19,
                   WEIGHT_STREAMING=20, REFIT_INDIVIDUAL=22, STRICT_NANS=23, MONITOR_MEMORY=24,
                   EDITABLE_TIMING_CACHE=26, DISTRIBUTIVE_INDEPENDENCE=27)  # REMOVED_11: FP16, BF16, INT8, FP8, ...

# Members that TensorRT 10 has and 11 removed (diff of PYCORE@v10.16 and PYCORE@v11.1, PYONNX likewise;
# listed in REMOVED_11). They exist in the 10 stand-ins so that code using them would pass on 10 and
# fail on 11, as it would for real.
_ONLY_10 = {
    "Builder": ("platform_has_fast_fp16", "platform_has_fast_int8", "platform_has_tf32"),
    "IBuilderConfig": ("int8_calibrator", "set_quantization_flag", "algorithm_selector"),
    "ICudaEngine": ("device_memory_size", "create_execution_context_without_device_memory",
                    "get_device_memory_size_for_profile", "has_implicit_batch_dimension"),
    "IExecutionContext": ("all_shape_inputs_specified",),
    "OnnxParser": ("supports_model",),
}

SURFACES = {
    # version strings: VERSION file at each tag
    "10.0": dict(version="10.0.0.6", builder_flags=_FLAGS_10_0, only_10=True,
                 # NVINFER@v10.0.0: kEXPLICIT_BATCH = 0 (deprecated, ignored), kSTRONGLY_TYPED = 1
                 creation_flags=dict(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)),
    "10.16": dict(version="10.16.0.72", builder_flags=_FLAGS_10_16, only_10=True,
                  # NVINFER@v10.16
                  creation_flags=dict(EXPLICIT_BATCH=0, STRONGLY_TYPED=1, PREFER_JIT_PYTHON_PLUGINS=2,
                                      PREFER_AOT_PYTHON_PLUGINS=3)),
    "11.1": dict(version="11.1.0.106", builder_flags=_FLAGS_11_1, only_10=False,
                 # NVINFER@v11.1: EXPLICIT_BATCH removed; kSTRONGLY_TYPED = 0, "deprecated ... always enabled,
                 # retained for API compatibility but ignored"
                 creation_flags=dict(STRONGLY_TYPED=0, PREFER_JIT_PYTHON_PLUGINS=1, PREFER_AOT_PYTHON_PLUGINS=2)),
}


def make_trt(surface: str | dict) -> types.ModuleType:
    """A stand-in `tensorrt` module for one surface; it records every call in `mod.calls`.

    Every method below is declared, with these argument names, in PYCORE / PYONNX at v10.0.0, v10.16 and
    v11.1 alike (checked with `git show <tag>:python/src/infer/pyCore.cpp | grep '"<name>"'`).
    """
    s = SURFACES[surface] if isinstance(surface, str) else surface
    mod = types.ModuleType("tensorrt")
    mod.__version__ = s["version"]
    mod.calls = []
    mod.parse_errors = []  # set by a test to make the parser fail
    mod.build_fails = False

    def log(name, *args, **kw):
        mod.calls.append((name, args, kw))

    class DataType(enum.Enum):  # PYCORE `py::enum_<DataType>`; module attributes float32/float16/bfloat16
        FLOAT, HALF, INT8, INT32, BOOL, UINT8, FP8, BF16, INT64 = range(9)

    class TensorIOMode(enum.Enum):  # PYCORE `py::enum_<TensorIOMode>`
        NONE, INPUT, OUTPUT = range(3)

    class MemoryPoolType(enum.IntEnum):  # PYCORE `py::enum_<MemoryPoolType>`
        WORKSPACE = 0
        DLA_MANAGED_SRAM = 1
        DLA_LOCAL_DRAM = 2
        DLA_GLOBAL_DRAM = 3
        TACTIC_DRAM = 4
        TACTIC_SHARED_MEMORY = 5

    BuilderFlag = enum.IntEnum("BuilderFlag", s["builder_flags"])
    NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", s["creation_flags"])

    class Severity(enum.IntEnum):  # PYCORE `py::enum_<ILogger::Severity>` ... .export_values()
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    class Logger:  # PYCORE `py::class_<DefaultLogger, ILogger>(m, "Logger")`, init "min_severity"_a
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = Severity

        def __init__(self, min_severity=Severity.WARNING):
            log("Logger", min_severity)

    class INetworkDefinition:
        def __init__(self, flags):
            self.flags, self.io = flags, {}  # python/src/infer/pyGraph.cpp "flags" property

    class OnnxParser:  # PYONNX: init "network"_a, "logger"_a
        def __init__(self, network, logger):
            log("OnnxParser", network, logger)
            self._network = network

        def parse_from_file(self, model):  # PYONNX "parse_from_file", "model"_a
            import onnx

            log("OnnxParser.parse_from_file", model)
            if mod.parse_errors:
                return False
            proto = onnx.load(model, load_external_data=False)
            elem = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF}
            for v in proto.graph.input:
                self._network.io[v.name] = (TensorIOMode.INPUT, elem[v.type.tensor_type.elem_type])
            for v in proto.graph.output:
                self._network.io[v.name] = (TensorIOMode.OUTPUT, elem[v.type.tensor_type.elem_type])
            self._network.source = model
            return True

        @property
        def num_errors(self):  # PYONNX "num_errors" property
            return len(mod.parse_errors)

        def get_error(self, index):  # PYONNX "get_error", "index"_a
            return mod.parse_errors[index]

    class IOptimizationProfile:
        def set_shape(self, input, min, opt, max):  # PYCORE "set_shape", "input"_a, "min"_a, "opt"_a, "max"_a
            log("IOptimizationProfile.set_shape", input, min, opt, max)
            self.shapes = {input: (tuple(min), tuple(opt), tuple(max))}

    class ITimingCache:
        def __init__(self, blob):
            self.blob = bytes(blob)

        def serialize(self):  # PYCORE "serialize"
            log("ITimingCache.serialize")
            return self.blob + b"+tuned"

    class IBuilderConfig:
        def __init__(self):
            self.flags, self.profiles, self.cache = set(), [], None

        def set_memory_pool_limit(self, pool, pool_size):  # PYCORE "pool"_a, "pool_size"_a
            log("IBuilderConfig.set_memory_pool_limit", pool, pool_size)
            assert isinstance(pool, MemoryPoolType) and pool_size > 0

        def set_flag(self, flag):  # PYCORE "set_flag", "flag"_a
            log("IBuilderConfig.set_flag", flag)
            assert isinstance(flag, BuilderFlag)
            self.flags.add(flag)

        def add_optimization_profile(self, profile):  # PYCORE "add_optimization_profile", "profile"_a
            log("IBuilderConfig.add_optimization_profile", profile)
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache):  # PYCORE "serialized_timing_cache"_a
            log("IBuilderConfig.create_timing_cache", bytes(serialized_timing_cache))
            return ITimingCache(serialized_timing_cache)

        def set_timing_cache(self, cache, ignore_mismatch):  # PYCORE "cache"_a, "ignore_mismatch"_a
            log("IBuilderConfig.set_timing_cache", cache, ignore_mismatch)
            self.cache = cache
            return True

        def get_timing_cache(self):  # PYCORE "get_timing_cache"
            log("IBuilderConfig.get_timing_cache")
            return self.cache

    class Builder:  # PYCORE init "logger"_a
        def __init__(self, logger):
            log("Builder", logger)

        def create_network(self, flags=0):  # PYCORE "create_network", "flags"_a = 0U
            log("Builder.create_network", flags)
            return INetworkDefinition(flags)

        def create_builder_config(self):  # PYCORE "create_builder_config"
            log("Builder.create_builder_config")
            return IBuilderConfig()

        def create_optimization_profile(self):  # PYCORE "create_optimization_profile"
            log("Builder.create_optimization_profile")
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):  # PYCORE "network"_a, "config"_a -> IHostMemory
            log("Builder.build_serialized_network", network, config)
            if mod.build_fails:
                return None
            (profile,) = config.profiles
            plan = {"trt": mod.__version__, "flags": network.flags, "source": network.source,
                    "io": {n: [m.name, d.name] for n, (m, d) in network.io.items()},
                    "profile": {n: s for n, s in profile.shapes.items()}}
            return b"STANDIN-PLAN " + json.dumps(plan).encode()

    class IExecutionContext:
        def __init__(self, engine):
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):  # PYCORE "set_input_shape", "name"_a, "shape"_a
            log("IExecutionContext.set_input_shape", name, tuple(shape))
            self.shapes[name] = tuple(shape)
            return True

        def set_tensor_address(self, name, memory):  # PYCORE "set_tensor_address", "name"_a, "memory"_a
            log("IExecutionContext.set_tensor_address", name, memory)
            assert isinstance(memory, int)
            self.addresses[name] = memory
            return True

        def execute_async_v3(self, stream_handle):  # PYCORE "execute_async_v3", "stream_handle"_a
            log("IExecutionContext.execute_async_v3", stream_handle)
            b, c, h, w = self.shapes[INPUT]
            lo, _, hi = self.engine.get_tensor_profile_shape(INPUT, 0)
            assert lo[0] <= b <= hi[0], "input shape outside the optimization profile"
            x = np.ctypeslib.as_array((ctypes.c_float * (b * c * h * w)).from_address(self.addresses[INPUT]))
            y = np.ctypeslib.as_array((ctypes.c_float * (b * 3 * 128 * 128)).from_address(self.addresses[OUTPUT]))
            # a marker instead of a network: output image i is filled with input i's first pixel
            y.reshape(b, -1)[:] = x.reshape(b, -1)[:, :1]
            return True

    class ICudaEngine:
        def __init__(self, plan):
            self.plan = plan

        @property
        def num_io_tensors(self):  # PYCORE "num_io_tensors"
            return len(self.plan["io"])

        def get_tensor_name(self, index):  # PYCORE "get_tensor_name", "index"_a
            return list(self.plan["io"])[index]

        def get_tensor_mode(self, name):  # PYCORE "get_tensor_mode", "name"_a
            log("ICudaEngine.get_tensor_mode", name)
            return TensorIOMode[self.plan["io"][name][0]]

        def get_tensor_dtype(self, name):  # PYCORE "get_tensor_dtype", "name"_a
            return DataType[self.plan["io"][name][1]]

        def get_tensor_profile_shape(self, name, profile_index):  # PYCORE "name"_a, "profile_index"_a
            assert profile_index == 0
            return [tuple(s) for s in self.plan["profile"][name]]

        def create_execution_context(self, strategy=None):  # PYCORE "strategy"_a = kSTATIC
            log("ICudaEngine.create_execution_context")
            return IExecutionContext(self)

    class Runtime:  # PYCORE init "logger"_a
        def __init__(self, logger):
            log("Runtime", logger)

        def deserialize_cuda_engine(self, serialized_engine):  # PYCORE "serialized_engine"_a
            log("Runtime.deserialize_cuda_engine")
            data = bytes(serialized_engine)
            if not data.startswith(b"STANDIN-PLAN "):
                return None
            plan = json.loads(data[len(b"STANDIN-PLAN "):])
            return ICudaEngine(plan) if plan["trt"] == mod.__version__ else None  # engines are per version

    def only_10(*_a, **_k):
        log("10-only member")
        return 0

    classes = dict(Logger=Logger, Builder=Builder, IBuilderConfig=IBuilderConfig, OnnxParser=OnnxParser,
                   ICudaEngine=ICudaEngine, IExecutionContext=IExecutionContext, Runtime=Runtime,
                   IOptimizationProfile=IOptimizationProfile, ITimingCache=ITimingCache,
                   INetworkDefinition=INetworkDefinition)
    if s["only_10"]:
        for cls, names in _ONLY_10.items():
            for name in names:
                setattr(classes[cls], name, only_10)
    for k, v in dict(classes, DataType=DataType, TensorIOMode=TensorIOMode, MemoryPoolType=MemoryPoolType,
                     BuilderFlag=BuilderFlag, NetworkDefinitionCreationFlag=NetworkDefinitionCreationFlag,
                     float32=DataType.FLOAT, float16=DataType.HALF, bfloat16=DataType.BF16).items():
        setattr(mod, k, v)
    return mod


@pytest.fixture
def standin(monkeypatch):
    """install(surface) puts a stand-in `tensorrt` into sys.modules for this test and returns it."""

    def install(surface):
        mod = make_trt(surface)
        monkeypatch.setitem(sys.modules, "tensorrt", mod)
        return mod

    return install


def called(mod) -> list[str]:
    return [c[0] for c in mod.calls]


# ------------------------------------------------------------------ models and graphs


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    torch.manual_seed(0)
    g = ProgressiveGenerator(channels=(16, 16, 8, 8), blocks=(1, 1, 1, 1))
    return save_generator(g, tmp_path_factory.mktemp("w") / "gen.safetensors", {"name": "test"})


@pytest.fixture(scope="module")
def graphs(small_weights, tmp_path_factory):
    """fp32 export and its fp16 graph for entry 16 of the small generator."""
    cache = tmp_path_factory.mktemp("cache")
    return {"fp32": cached_onnx(small_weights, 16, cache), "fp16": T.cached_fp16_onnx(small_weights, 16, cache)}


# ------------------------------------------------------------------ the stand-ins are what was recorded


def test_standins_differ_where_the_documentation_says():
    t10, t16, t11 = make_trt("10.0"), make_trt("10.16"), make_trt("11.1")
    for t in (t10, t16):
        assert hasattr(t.BuilderFlag, "FP16") and hasattr(t.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
        assert int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 1
        assert hasattr(t.Builder, "platform_has_fast_fp16")
    for gone in ("FP16", "BF16", "INT8", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS"):
        assert not hasattr(t11.BuilderFlag, gone)
    assert not hasattr(t11.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
    assert int(t11.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 0
    assert int(t11.NetworkDefinitionCreationFlag.PREFER_JIT_PYTHON_PLUGINS) == 1  # what `1 << 1` means on 11
    assert not hasattr(t11.Builder, "platform_has_fast_fp16") and not hasattr(t11.ICudaEngine, "device_memory_size")


def test_the_old_weakly_typed_build_fails_on_the_11_standin():
    """The pre-11 recipe (MIGRATE_11 'Before'): config.set_flag(trt.BuilderFlag.FP16) — gone on 11."""
    t11 = make_trt("11.1")
    config = t11.Builder(t11.Logger(t11.Logger.WARNING)).create_builder_config()
    with pytest.raises(AttributeError):
        config.set_flag(t11.BuilderFlag.FP16)


# ------------------------------------------------------------------ versions


@pytest.mark.parametrize("version", ["8.6.1", "9.3.0.1", "7.2.3.4"])
def test_too_old_tensorrt_is_refused_in_one_line(version, standin, graphs, tmp_path):
    mod = standin({**SURFACES["10.16"], "version": version})
    ok, why = T.available()
    assert not ok and version in why and "10 or 11" in why and "\n" not in why
    for attempt in (lambda: T.build_engine(graphs["fp16"], tmp_path / "x.engine", 16, Profile(1, 2, 4)),
                    lambda: T.TensorRTEngine(tmp_path / "missing.engine")):
        with pytest.raises(TensorRTError) as e:
            attempt()
        assert "\n" not in str(e.value) and version in str(e.value) and "10 or 11" in str(e.value)
    assert "Builder" not in called(mod) and "Runtime" not in called(mod)  # refused before touching the API


def test_unparsable_version_is_refused(standin):
    standin({**SURFACES["11.1"], "version": "unknown"})
    assert T.available() == (False, "tensorrt reports version 'unknown', which is not a TensorRT version")


@pytest.mark.parametrize("surface", list(SURFACES))
def test_supported_versions_pass_the_gate(surface, standin):
    standin(surface)
    ok, why = T.available()
    assert ok or why == "no CUDA device visible to torch"  # the version was accepted (no GPU here)


@pytest.mark.parametrize("surface,bit", [("10.0", 2), ("10.16", 2), ("11.1", 1)])
def test_network_flags_come_from_the_enum(surface, bit):
    t = make_trt(surface)
    assert T.network_flags(t, T.major_version(t.__version__)) == bit


def test_network_flags_without_strongly_typed():
    later = make_trt({**SURFACES["11.1"], "version": "12.0.0", "creation_flags": {"PREFER_JIT_PYTHON_PLUGINS": 0}})
    assert T.network_flags(later, 12) == 0  # strong typing is the only mode from 11 on
    odd10 = make_trt({**SURFACES["10.0"], "creation_flags": {"EXPLICIT_BATCH": 0}})
    with pytest.raises(TensorRTError, match="STRONGLY_TYPED"):
        T.network_flags(odd10, 10)


# ------------------------------------------------------------------ builder


BUILD_SEQUENCE = ["Logger", "Builder", "Builder.create_network", "OnnxParser", "OnnxParser.parse_from_file",
                  "Builder.create_builder_config", "IBuilderConfig.set_memory_pool_limit",
                  "Builder.create_optimization_profile", "IOptimizationProfile.set_shape",
                  "IBuilderConfig.add_optimization_profile", "IBuilderConfig.create_timing_cache",
                  "IBuilderConfig.set_timing_cache", "Builder.build_serialized_network",
                  "IBuilderConfig.get_timing_cache", "ITimingCache.serialize"]


@pytest.mark.parametrize("fp16", [True, False], ids=["fp16", "fp32"])
@pytest.mark.parametrize("surface,bit", [("10.0", 2), ("10.16", 2), ("11.1", 1)])
def test_builder_calls_only_what_the_version_has(surface, bit, fp16, standin, graphs, tmp_path):
    mod = standin(surface)
    onnx_path = graphs["fp16" if fp16 else "fp32"]
    timing = tmp_path / "cache" / "timing.cache"
    out = T.build_engine(onnx_path, tmp_path / "e.engine", 16, Profile(2, 8, 32, fp16=fp16), timing, workspace_gb=1)
    assert called(mod) == BUILD_SEQUENCE  # in particular: no set_flag (FP16 is gone on 11, refused when strongly typed on 10)
    assert "10-only member" not in called(mod)
    args = {c[0]: c for c in mod.calls}
    assert args["Builder.create_network"][1] == (bit,)  # STRONGLY_TYPED, from the enum: 1 << 1 on 10, 1 << 0 on 11
    assert args["OnnxParser.parse_from_file"][1] == (str(onnx_path),)
    assert args["IOptimizationProfile.set_shape"][1] == (INPUT, (2, 3, 16, 16), (8, 3, 16, 16), (32, 3, 16, 16))
    assert args["IBuilderConfig.set_memory_pool_limit"][1] == (mod.MemoryPoolType.WORKSPACE, 1 << 30)
    assert args["IBuilderConfig.set_timing_cache"][1][1] is False  # ignore_mismatch
    plan = json.loads(out.read_bytes()[len(b"STANDIN-PLAN "):])
    assert plan["trt"] == mod.__version__ and plan["io"] == {INPUT: ["INPUT", "FLOAT"], OUTPUT: ["OUTPUT", "FLOAT"]}
    assert timing.read_bytes() == b"+tuned"

    mod.calls.clear()  # a second build starts from the saved timing cache
    T.build_engine(onnx_path, tmp_path / "f.engine", 16, Profile(2, 8, 32, fp16=fp16), timing)
    assert {c[0]: c for c in mod.calls}["IBuilderConfig.create_timing_cache"][1] == (b"+tuned",)


@pytest.mark.parametrize("surface", list(SURFACES))
def test_precision_must_match_the_graph(surface, standin, graphs, tmp_path):
    """No silent fp32 engine under an fp16 name (what the FP16-flag code does on 11 when it skips the flag)."""
    mod = standin(surface)
    with pytest.raises(TensorRTError, match="fp32 graph but the profile asks for fp16.*cached_fp16_onnx"):
        T.build_engine(graphs["fp32"], tmp_path / "e.engine", 16, Profile(fp16=True))
    with pytest.raises(TensorRTError, match="fp16 graph but the profile asks for fp32"):
        T.build_engine(graphs["fp16"], tmp_path / "e.engine", 16, Profile(fp16=False))
    assert "Builder" not in called(mod)


def test_parse_and_build_failures_are_one_clear_error(standin, graphs, tmp_path):
    mod = standin("11.1")
    mod.parse_errors = ["In node 3 (Resize): UNSUPPORTED_NODE", "second"]
    with pytest.raises(TensorRTError, match="could not parse .*UNSUPPORTED_NODE; second"):
        T.build_engine(graphs["fp16"], tmp_path / "e.engine", 16)
    mod.parse_errors, mod.build_fails = [], True
    path = tmp_path / "engines" / "x.engine"
    with pytest.raises(TensorRTError, match="failed to build"):
        T.cached_engine(path, lambda tmp: T.build_engine(graphs["fp16"], tmp, 16))
    assert not path.exists() and not list(path.parent.glob(".*tmp"))


@pytest.mark.parametrize("surface", ["10.16", "11.1"])
def test_ensure_engines_builds_from_the_fp16_graph_and_reuses(surface, standin, small_weights, tmp_path, monkeypatch):
    mod = standin(surface)
    monkeypatch.setattr(T, "available", lambda: (True, "stand-in"))
    monkeypatch.setattr(T, "device_key", lambda: ("NVIDIA H100 80GB HBM3", (9, 0), mod.__version__))
    cache = tmp_path / "cache"
    lines = []
    first = T.ensure_engines(small_weights, (16, 32), Profile(1, 4, 8), cache, log=lines.append)
    for e, path in first.items():
        assert path.parent == cache and f"_e{e}_" in path.name and f"_trt{mod.__version__}_" in path.name
        assert path.name.endswith("_sm90_trt%s_b1-4-8_fp16.engine" % mod.__version__)
        source = Path(json.loads(path.read_bytes()[len(b"STANDIN-PLAN "):])["source"])
        assert source.name.endswith(f"_e{e}_op18_fp16.onnx") and source.parent == cache
        assert T.onnx_precision(source) == "fp16"
    assert [ln.split()[0] for ln in lines] == ["built", "built"]
    assert len(list(cache.glob("timing_nvidia-h100-80gb-hbm3_sm90_trt*.cache"))) == 1
    mod.calls.clear()
    assert T.ensure_engines(small_weights, (16, 32), Profile(1, 4, 8), cache, log=lines.append) == first
    assert "Builder" not in called(mod) and [ln.split()[0] for ln in lines[2:]] == ["reused", "reused"]
    fp32 = T.ensure_engines(small_weights, (16,), Profile(1, 4, 8, fp16=False), cache)
    source = Path(json.loads(fp32[16].read_bytes()[len(b"STANDIN-PLAN "):])["source"])
    assert fp32[16].name.endswith("_fp32.engine") and source.name.endswith("_e16_op18.onnx")


# ------------------------------------------------------------------ runtime


@pytest.mark.parametrize("surface", list(SURFACES))
def test_runtime_binds_slices_and_pads_within_the_profile(surface, standin, graphs, tmp_path):
    mod = standin(surface)
    path = T.build_engine(graphs["fp16"], tmp_path / "e.engine", 16, Profile(4, 8, 16))
    mod.calls.clear()
    eng = T.TensorRTEngine(path)
    assert (eng.min_batch, eng.max_batch, eng.in_dtype, eng.out_dtype) == (4, 16, torch.float32, torch.float32)
    assert called(mod)[:4] == ["Logger", "Runtime", "Runtime.deserialize_cuda_engine", "ICudaEngine.create_execution_context"]
    eng.stream = lambda: 1234  # no CUDA here: any handle; the stand-in checks it is passed through
    for n, shapes in ((1, [4]), (3, [4]), (16, [16]), (18, [16, 4])):  # pad below min, slice above max
        mod.calls.clear()
        x = torch.rand(n, 3, 16, 16) * 2 - 1
        y = eng(x)
        assert y.shape == (n, 3, 128, 128) and y.dtype == torch.float32
        assert torch.equal(y.flatten(1), x[:, :1, 0, 0].expand(n, 3 * 128 * 128))  # image i from input i
        assert [c[1][1][0] for c in mod.calls if c[0] == "IExecutionContext.set_input_shape"] == shapes
        assert [c[1] for c in mod.calls if c[0] == "IExecutionContext.execute_async_v3"] == [(1234,)] * len(shapes)
    assert "10-only member" not in called(mod)


def test_runtime_refuses_foreign_or_wrong_engines(standin, graphs, tmp_path):
    standin("10.16")
    path = T.build_engine(graphs["fp16"], tmp_path / "e.engine", 16, Profile(1, 2, 4))
    standin("11.1")  # a 10.16 engine on 11.1: deserialize returns None, as TensorRT does for another version
    with pytest.raises(TensorRTError, match="cannot deserialize"):
        T.TensorRTEngine(path)
    plan = json.loads(path.read_bytes()[len(b"STANDIN-PLAN "):])
    plan["trt"] = SURFACES["11.1"]["version"]
    swapped = dict(plan, io={INPUT: ["OUTPUT", "FLOAT"], OUTPUT: ["INPUT", "FLOAT"]})
    bad = tmp_path / "swapped.engine"
    bad.write_bytes(b"STANDIN-PLAN " + json.dumps(swapped).encode())
    with pytest.raises(TensorRTError, match="must be the input"):
        T.TensorRTEngine(bad)
    renamed = dict(plan, io={"input": ["INPUT", "FLOAT"], OUTPUT: ["OUTPUT", "FLOAT"]})
    bad.write_bytes(b"STANDIN-PLAN " + json.dumps(renamed).encode())
    with pytest.raises(TensorRTError, match="expected tensors"):
        T.TensorRTEngine(bad)


# ------------------------------------------------------------------ the fp16 graph, executed on CPU


def test_fp16_graph_is_cached_beside_the_fp32_export(graphs, small_weights):
    import onnx

    fp32, fp16 = graphs["fp32"], graphs["fp16"]
    assert fp16.parent == fp32.parent and fp16.name == fp32.name.replace(".onnx", "_fp16.onnx")
    assert T.onnx_precision(fp32) == "fp32" and T.onnx_precision(fp16) == "fp16"
    proto = onnx.load(str(fp16))
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [onnx.TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in proto.graph.output] == [onnx.TensorProto.FLOAT]
    floats = {t.data_type for t in proto.graph.initializer} - {onnx.TensorProto.INT64}
    assert floats == {onnx.TensorProto.FLOAT16}  # every weight in float16
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["precision"] == "fp16" and meta["entry"] == "16" and meta["weights"] == small_weights.name
    assert meta["weights_sha256"] == {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}["weights_sha256"]
    mtime = fp16.stat().st_mtime_ns
    assert T.cached_fp16_onnx(small_weights, 16, fp16.parent) == fp16 and fp16.stat().st_mtime_ns == mtime  # reused


def test_fp16_export_leaves_the_callers_model_in_float32(small_weights, tmp_path):
    model, _ = load_generator(small_weights)
    T.cached_fp16_onnx(small_weights, 16, tmp_path, model=model)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.fixture(scope="module")
def shipped_graphs(tmp_path_factory):
    cache = tmp_path_factory.mktemp("shipped")
    return {(w.stem, e): (cached_onnx(w, e, cache), T.cached_fp16_onnx(w, e, cache)) for w in SHIPPED for e in ENTRIES}


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("weights", [w.stem for w in SHIPPED])
def test_fp16_graph_runs_on_cpu_onnxruntime_and_matches_fp32(weights, entry, shipped_graphs):
    """Shipped weights, random inputs in the model's [-1, 1] range: the fp16 graph loads and runs on CPU
    onnxruntime and agrees with the fp32 export. CPU onnxruntime runs float16 nodes largely through float32
    kernels behind Casts, so this checks the graph (types, casts, float16 weights) rather than fp16
    arithmetic; `test_fp16_arithmetic_on_the_shipped_weights` covers that."""
    import onnxruntime as ort

    fp32, fp16 = shipped_graphs[(weights, entry)]
    x = np.random.default_rng(entry).random((8, 3, entry, entry), dtype=np.float32) * 2 - 1
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {INPUT: x})[0]
    ref, got = run(fp32), run(fp16)
    assert got.dtype == np.float32 and got.shape == ref.shape == (8, 3, 128, 128)
    diff = np.abs(got - ref)
    assert diff.max() < 1e-3 and diff.mean() < 2e-4, (diff.max(), diff.mean())  # measured 2.4e-4 / 7e-5


@pytest.mark.parametrize("weights", SHIPPED, ids=[w.stem for w in SHIPPED])
def test_fp16_arithmetic_on_the_shipped_weights(weights):
    """A proxy for what an fp16 engine computes (not TensorRT's kernels): the generator in torch float16 on
    CPU stays within one 8-bit output level (2/255) of float32 on random inputs, at every entry."""
    model, _ = load_generator(weights)
    for entry in ENTRIES:
        x = torch.rand(4, 3, entry, entry, generator=torch.Generator().manual_seed(entry)) * 2 - 1
        with torch.no_grad():
            ref = model.float()(x).clamp(-1, 1)
            half = model.half()(x.half()).float().clamp(-1, 1)
        assert (half - ref).abs().max().item() < 2 / 255, entry  # measured at most 2.5e-3 (pfsr_v2, e16)
