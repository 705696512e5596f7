"""The device setting reaches every model: the provider choice as a pure function of ONNX Runtime's provider
list (CPU, CUDA, TensorRT), the real choice against this machine's onnxruntime, the generator's backend
order per device, and `doctor` saying which provider each model uses and why."""

from __future__ import annotations

import pytest

from pipeline.core.config import load_config
from pipeline.core.devices import (
    CPU,
    CUDA,
    TENSORRT,
    Choice,
    Device,
    DeviceError,
    onnx_providers,
    session,
    tensorrt_options,
)
from pipeline.core.errors import ConfigError
from pipeline.stages.enhance import backends as B
from support.paths import MODELS, require

CPU_ONLY = ["AzureExecutionProvider", CPU]
GPU_WHEEL = [TENSORRT, CUDA, CPU]


@pytest.mark.parametrize("text, kind, index", [("auto", "auto", 0), ("cpu", "cpu", 0), ("cuda", "cuda", 0),
                                               ("cuda:1", "cuda", 1), (" CUDA:3 ", "cuda", 3)])
def test_device_values(text, kind, index):
    assert Device.parse(text) == Device(kind, index)


@pytest.mark.parametrize("text", ["gpu", "cpu:1", "cuda:", "cuda:x", "", "auto:0"])
def test_bad_device_values_are_named(text):
    with pytest.raises(ConfigError, match="enhance.device"):
        Device.parse(text, "enhance.device")


def test_cpu_wheel_runs_on_the_cpu_unless_cuda_is_insisted_on():
    auto = onnx_providers("auto", CPU_ONLY)
    assert auto.providers == [CPU] and "no GPU execution provider" in auto.why
    assert onnx_providers("cpu", CPU_ONLY).providers == [CPU]
    with pytest.raises(DeviceError, match="onnxruntime-gpu"):
        onnx_providers("cuda:0", CPU_ONLY)


def test_gpu_wheel_takes_cuda_on_the_device_asked_and_cpu_as_fallback():
    auto = onnx_providers("auto", GPU_WHEEL)
    assert auto.names == [CUDA, CPU] and auto.providers[0][1]["device_id"] == 0 and "CUDA" in auto.why
    second = onnx_providers("cuda:1", GPU_WHEEL)
    assert second.names == [CUDA, CPU] and second.providers[0][1]["device_id"] == 1
    assert onnx_providers("cpu", GPU_WHEEL).providers == [CPU]  # asked for the CPU: never the GPU


def test_graph_runtime_is_torch_only_where_it_alone_reaches_the_gpu():
    """`detect.runtime: auto` moves the detector to torch when the GPU is wanted, this onnxruntime cannot
    reach it and torch can; a GPU wheel, a CPU device or a torch without CUDA keep ONNX Runtime."""
    from pipeline.core.devices import graph_runtime, torch_device

    assert graph_runtime("auto", "auto", CPU_ONLY, torch_cuda=True)[0] == "torch"
    assert "no CUDA execution provider, torch has CUDA" in graph_runtime("auto", "cuda:1", CPU_ONLY, True)[1]
    assert graph_runtime("auto", "auto", GPU_WHEEL, torch_cuda=True)[0] == "onnxruntime"
    assert graph_runtime("auto", "cpu", CPU_ONLY, torch_cuda=True)[0] == "onnxruntime"
    assert graph_runtime("auto", "auto", CPU_ONLY, torch_cuda=False)[0] == "onnxruntime"
    assert graph_runtime("onnxruntime", "auto", CPU_ONLY, torch_cuda=True)[0] == "onnxruntime"
    assert graph_runtime("torch", "cpu", GPU_WHEEL, torch_cuda=False)[0] == "torch"
    with pytest.raises(DeviceError, match="torch has no CUDA"):
        graph_runtime("torch", "cuda", CPU_ONLY, torch_cuda=False)
    assert torch_device("auto", True) == "cuda:0" and torch_device("cuda:2", True) == "cuda:2"
    assert torch_device("auto", False) == "cpu" and torch_device("cpu", True) == "cpu"


def test_tensorrt_provider_only_for_models_given_its_options(tmp_path):
    trt = tensorrt_options(tmp_path, "lr", (3, 16, 16), 1, 16, 16)
    choice = onnx_providers("cuda:2", GPU_WHEEL, trt)
    assert choice.names == [TENSORRT, CUDA, CPU]
    opts = choice.providers[0][1]
    assert opts["device_id"] == 2 and opts["trt_fp16_enable"] and opts["trt_engine_cache_enable"]
    assert opts["trt_engine_cache_path"].startswith(str(tmp_path)) and opts["trt_timing_cache_enable"]
    assert opts["trt_timing_cache_path"].startswith(str(tmp_path))
    assert (opts["trt_profile_min_shapes"], opts["trt_profile_opt_shapes"], opts["trt_profile_max_shapes"]) == (
        "lr:1x3x16x16", "lr:16x3x16x16", "lr:16x3x16x16")
    assert onnx_providers("cuda", [CUDA, CPU], trt).names == [CUDA, CPU]  # a wheel without TensorRT


def tiny_onnx(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_session_on_this_machines_onnxruntime(tmp_path):
    """The real provider list (CPU-only here): the session uses what the choice says, with the threads asked."""
    import onnxruntime as ort

    model = tiny_onnx(tmp_path / "tiny.onnx")
    sess, choice = session(model, "auto", threads=2)
    expected = onnx_providers("auto", ort.get_available_providers())
    assert isinstance(choice, Choice) and choice.names[0] == expected.names[0] == sess.get_providers()[0]
    assert sess.get_session_options().intra_op_num_threads == 2
    if CUDA not in ort.get_available_providers():
        assert choice.names == [CPU] and "2 CPU threads" in choice.why
        with pytest.raises(DeviceError, match="cuda:0"):
            session(model, "cuda:0")


def test_one_setting_reaches_every_stage_and_each_can_override():
    cfg = load_config(None, ["device=cuda:1"])
    assert {cfg.device_of(s) for s in (cfg.detect, cfg.enhance, cfg.people)} == {Device("cuda", 1)}
    cfg = load_config(None, ["device=cuda", "people.device=cpu", "detect.threads=3", "people.threads=0"])
    assert (cfg.device_of(cfg.detect), cfg.device_of(cfg.people), cfg.device_of(cfg.enhance)) == (
        Device("cuda"), Device("cpu"), Device("cuda"))
    assert (cfg.detect.threads, cfg.people.threads) == (3, 0)
    assert load_config().device == "auto"
    with pytest.raises(ConfigError, match="detect.device"):
        load_config(None, ["detect.device=gpu0"])
    with pytest.raises(ConfigError, match="^device"):
        load_config(None, ["device=tpu"])


def test_generator_backends_per_device():
    no = (False, "missing")
    cpu_only = {"tensorrt": no, "torch-cuda": no, "onnxruntime": (True, "providers CPUExecutionProvider"),
                "torch-cpu": (True, "")}
    gpu = {"tensorrt": (True, ""), "torch-cuda": (True, ""),
           "onnxruntime": (True, "providers CUDAExecutionProvider, CPUExecutionProvider"), "torch-cpu": (True, "")}
    assert B.resolve("auto", gpu, "cpu") == ["torch-cpu", "onnxruntime"]
    assert B.resolve("auto", gpu, "cuda:0") == ["tensorrt", "torch-cuda", "onnxruntime"]
    assert B.resolve("auto", gpu, "auto") == ["tensorrt", "torch-cuda", "onnxruntime", "torch-cpu"]
    assert B.resolve("auto", cpu_only, "auto") == ["torch-cpu", "onnxruntime"]
    with pytest.raises(B.BackendUnavailable, match="no generator backend can use a GPU"):
        B.resolve("auto", cpu_only, "cuda")
    with pytest.raises(B.BackendUnavailable, match="cannot run on device"):
        B.resolve("torch-cuda", gpu, "cpu")
    with pytest.raises(B.BackendUnavailable, match="cannot run on device"):
        B.resolve("torch-cpu", gpu, "cuda")
    assert B.resolve("onnxruntime", gpu, "cpu") == ["onnxruntime"]


def test_detector_and_embedder_run_where_they_are_told():
    require(MODELS / "det_500m.onnx", MODELS / "mobilefacenet_128d.onnx")
    import onnxruntime as ort

    from pipeline.core.config import DetectConfig
    from pipeline.report.people import Embedder
    from pipeline.stages.detect import Detector

    det = Detector(DetectConfig(threads=1), MODELS, device="cpu")
    assert det.choice.names == [CPU] and det.model.session.get_providers() == [CPU]
    emb = Embedder(MODELS / "mobilefacenet_128d.onnx", threads=1, device="auto")
    assert emb.choice.names[0] == onnx_providers("auto", ort.get_available_providers()).names[0]
    if CUDA not in ort.get_available_providers():
        with pytest.raises(DeviceError, match="detector"):
            Detector(DetectConfig(device="cuda:0"), MODELS)


def test_embedder_in_torch_gives_onnxruntimes_embeddings(detector):
    """MobileFaceNet's graph run by torch (`people.runtime: torch`) against ONNX Runtime on real faces: the
    same embeddings (cosine ≥ 0.99999), so a catalogue searched by one finds what the other stored."""
    import cv2

    from pipeline.core.geometry import CROP, similarity
    from pipeline.report.people import Embedder, crop112
    from pipeline.stages.align import warp
    from support.paths import IMAGES

    require(MODELS / "mobilefacenet_128d.onnx")
    crops = []
    for name in ("obama_1.jpg", "biden_1.jpg", "two_people.jpg"):
        image = cv2.imread(str(IMAGES / name))
        crops += [crop112(warp(image, similarity(f.kps), CROP), f.kps) for f in detector(image)]
    ort_emb = Embedder(MODELS / "mobilefacenet_128d.onnx", device="cpu", runtime="onnxruntime")
    torch_emb = Embedder(MODELS / "mobilefacenet_128d.onnx", device="cpu", runtime="torch")
    assert torch_emb.choice.names == ["torch-cpu"] and ort_emb.choice.names == [CPU]
    a, b = ort_emb(crops), torch_emb(crops)
    assert a.shape == b.shape == (len(crops), 128) and len(crops) >= 4
    assert (a * b).sum(1).min() >= 0.99999
    assert (a[0] * a[1:]).sum(1).max() < 0.9  # different people stay apart: the comparison means something


def test_doctor_names_each_models_provider_and_why(capsys):
    require(MODELS / "det_500m.onnx", MODELS / "mobilefacenet_128d.onnx")
    from pipeline.cli import main

    main(["doctor", "--models", str(MODELS), "--set", "device=cpu", "--set", "people.threads=2"])
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ") and ln.split()}
    assert CPU in lines["detector"] and "(device cpu)" in lines["detector"]
    assert CPU in lines["embedder"] and "2 CPU threads" in lines["embedder"]
    assert "torch-cpu" in lines["generator"] and "device cpu" in lines["generator"]
    assert "devices     device cpu" in out and "cache " in out
