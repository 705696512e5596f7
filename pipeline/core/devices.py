"""Which processor each model runs on, and why: one `device` setting for the detector, the people
embedder and the generator (`auto`, `cpu`, `cuda` or `cuda:N`; a stage's own `device` overrides the
top-level one).

The detector and the embedder are ONNX files run by ONNX Runtime; whether it can use a GPU depends on the
wheel installed (`onnxruntime` has only the CPU execution provider, `onnxruntime-gpu` adds CUDA and
TensorRT). `onnx_providers` is the pure choice, tested on provider lists; `session` makes the
InferenceSession and reports what ONNX Runtime actually took, since it falls back to the CPU on its own
when the CUDA libraries are missing. The generator's backends choose with the same `Device`
(`enhance.backends.resolve`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import ConfigError, EnhanceError

CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)
PATTERN = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")
GPU_WHEEL = "pip install onnxruntime-gpu in place of onnxruntime (docs/gpu.md)"
TORCH = "torch-"  # a torch-runtime Choice's one provider: "torch-cuda:0", "torch-cpu"


class DeviceError(EnhanceError):
    """The device asked for cannot be used here; the message says why."""


@dataclass(frozen=True)
class Device:
    """A parsed `device` value: `auto` (a GPU when there is one), `cpu`, or CUDA device `index`."""

    kind: str = "auto"
    index: int = 0

    @classmethod
    def parse(cls, text: str, key: str = "device") -> Device:
        m = PATTERN.fullmatch(str(text).strip().lower())
        if not m or (m.group(2) is not None and m.group(1) != "cuda"):
            raise ConfigError(f"{key}: {text!r} is not a device (auto, cpu, cuda or cuda:N)")
        return cls(m.group(1), int(m.group(2) or 0))

    @classmethod
    def of(cls, device: str | Device) -> Device:
        """`device` as a Device: the one parsed already, or a setting's text parsed now."""
        return device if isinstance(device, Device) else cls.parse(str(device))

    def __str__(self) -> str:
        return f"cuda:{self.index}" if self.kind == "cuda" else self.kind


@dataclass(frozen=True)
class Choice:
    """Execution providers for an InferenceSession (names, or (name, options)) and the reason for them."""

    providers: list[Any]
    why: str

    @property
    def names(self) -> list[str]:
        return [p if isinstance(p, str) else p[0] for p in self.providers]

    @property
    def torch_device(self) -> str | None:
        """The torch device of a torch-runtime choice ("cuda:0", "cpu"); None for ONNX Runtime's providers."""
        first = self.names[0]
        return first[len(TORCH) :] if first.startswith(TORCH) else None


def onnx_providers(device: str | Device, available: Sequence[str],
                   tensorrt: dict[str, Any] | None = None) -> Choice:
    """The providers for `device` given ONNX Runtime's `get_available_providers()`.

    `auto` takes CUDA (and TensorRT, when `tensorrt` options are given) when the wheel has them, `cuda`
    insists on them, `cpu` never uses them; the CPU provider always comes last as ONNX Runtime's
    fallback for operators a GPU provider does not take.
    """
    d = Device.of(device)
    if d.kind == "cpu":
        return Choice([CPU], "device cpu")
    gpu: list[Any] = []
    if tensorrt is not None and TENSORRT in available:
        gpu.append((TENSORRT, {"device_id": d.index, **tensorrt}))
    if CUDA in available:
        gpu.append((CUDA, cuda_options(d)))
    if gpu:
        names = " and ".join(p[0].replace("ExecutionProvider", "") for p in gpu)
        return Choice([*gpu, CPU], f"device {d}: this onnxruntime has {names}")
    if d.kind == "cuda":
        raise DeviceError(f"device {d} asked, but this onnxruntime has no CUDA execution provider "
                          f"(it has {', '.join(available) or 'none'}): {GPU_WHEEL}")
    return Choice([CPU], "device auto: this onnxruntime has no GPU execution provider (the CPU wheel)")


def graph_runtime(runtime: str, device: str | Device, available: Sequence[str], torch_cuda: bool) -> tuple[str, str]:
    """Which runtime runs an ONNX model (the detector, the people embedder), `onnxruntime` or `torch`, and why.

    `auto` keeps ONNX Runtime unless a GPU may be used (`device` auto or cuda), this onnxruntime has no CUDA
    provider and torch has CUDA: then torch runs the same graph on the GPU (`core.onnx_torch`) instead of
    ONNX Runtime on the CPU or an error. Asked by name, each is taken as it is; torch on `cuda` needs CUDA.
    """
    d = Device.of(device)
    if runtime == "torch":
        if d.kind == "cuda" and not torch_cuda:
            raise DeviceError(f"device {d} asked for the torch runtime, but this torch has no CUDA")
        return "torch", "runtime torch asked"
    if runtime == "auto" and d.kind != "cpu" and CUDA not in available and torch_cuda:
        return "torch", f"device {d}: this onnxruntime has no CUDA execution provider, torch has CUDA"
    return "onnxruntime", ""


def torch_device(device: str | Device, torch_cuda: bool) -> str:
    """The torch device string for a `Device` (auto: the first GPU when torch has CUDA, else the CPU)."""
    d = Device.of(device)
    return f"cuda:{d.index}" if d.kind == "cuda" or (d.kind == "auto" and torch_cuda) else "cpu"


def pick_runtime(runtime: str, device: str | Device, what: str) -> Choice | None:
    """`graph_runtime` against this machine: the Choice of torch ("torch-cuda:0", "torch-cpu") and why, or
    None for ONNX Runtime (the session then made by `session`)."""
    import onnxruntime as ort

    d = Device.of(device)
    cuda = False
    if runtime != "onnxruntime" and d.kind != "cpu":
        import torch

        cuda = torch.cuda.is_available()
    try:
        name, why = graph_runtime(runtime, d, ort.get_available_providers(), cuda)
    except DeviceError as e:
        raise DeviceError(f"{what}: {e}") from None
    return Choice([TORCH + torch_device(d, cuda)], why) if name == "torch" else None


def tensorrt_options(cache: Path, input_name: str, shape: tuple[int, ...], min_batch: int, opt_batch: int,
                     max_batch: int, fp16: bool = True) -> dict[str, Any]:
    """ONNX Runtime TensorRT provider options: fp16, engines and the timing cache kept in `cache` (so a
    second run loads instead of rebuilding), one optimization profile over the batch axis."""
    dims = lambda n: f"{input_name}:{'x'.join(str(v) for v in (n, *shape))}"  # noqa: E731
    folder = str(Path(cache) / "ort-tensorrt")
    return {"trt_fp16_enable": fp16, "trt_engine_cache_enable": True, "trt_engine_cache_path": folder,
            "trt_timing_cache_enable": True, "trt_timing_cache_path": folder,
            "trt_profile_min_shapes": dims(min_batch), "trt_profile_opt_shapes": dims(opt_batch),
            "trt_profile_max_shapes": dims(max_batch)}


def cuda_options(device: str | Device) -> dict[str, Any]:
    """CUDA provider options for one device (cuDNN picks convolution algorithms by heuristics, not a
    per-shape search, as the detector's input shape follows each video's aspect ratio)."""
    d = Device.of(device)
    return {"device_id": d.index, "cudnn_conv_algo_search": "HEURISTIC"}


def session(model: str | Path, device: str | Device, threads: int = 0, tensorrt: dict[str, Any] | None = None,
            what: str = "model"):
    """An InferenceSession for `model` on `device` with `threads` CPU threads (0: ONNX Runtime's choice);
    returns (session, Choice) where the Choice names the providers the session really uses."""
    import onnxruntime as ort

    d = Device.of(device)
    try:
        choice = onnx_providers(d, ort.get_available_providers(), tensorrt)
    except DeviceError as e:
        raise DeviceError(f"{what}: {e}") from None
    for name, options in (p for p in choice.providers if not isinstance(p, str)):
        if name == TENSORRT:  # its cache folders must exist before it writes an engine
            Path(options["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3  # ONNX Runtime's fallback warnings: the Choice reports what happened
    sess = ort.InferenceSession(str(model), opts, providers=choice.providers)
    used = sess.get_providers()
    if used[0] == CPU and choice.names[0] != CPU:
        if d.kind == "cuda":
            raise DeviceError(f"{what}: device {d} asked, but onnxruntime could not start "
                              f"{choice.names[0]} (CUDA/cuDNN libraries missing?) and fell back to the CPU")
        return sess, Choice(used, f"device auto: {choice.names[0]} present but failed to start, on the CPU")
    why = choice.why + (f", {threads} CPU thread{'s' * (threads != 1)}" if threads and used[0] == CPU else "")
    return sess, Choice(used, why)


def cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU multiplies bf16 natively (AMX or AVX512-BF16), and what it has: without either,
    oneDNN emulates bf16 and it is slower than fp32."""
    import torch

    amx, avx = torch.cpu._is_amx_tile_supported(), torch.cpu._is_avx512_bf16_supported()
    units = [n for n, ok in (("AMX", amx), ("AVX512-BF16", avx)) if ok]
    return bool(units), ", ".join(units) or "no AMX or AVX512-BF16"
