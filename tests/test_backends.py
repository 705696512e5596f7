"""Backends: one contract across all of them, ONNX export + onnxruntime parity, selection, engine naming/caching.

A small random-weight generator is written to tmp (the real weights change while they train). GPU-only
tests (torch-cuda, tensorrt) skip with the reason when there is no CUDA device / TensorRT.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.config import EnhanceConfig
from pipeline.core.devices import cpu_bf16
from pipeline.core.errors import EnhanceError
from pipeline.core.models import sha256
from pipeline.core.types import Face
from pipeline.stages.enhance import backends as B
from pipeline.stages.enhance.export import cached_onnx, onnx_metadata, onnx_name
from pipeline.stages.enhance.generator import ProgressiveGenerator, load_generator, save_generator
from pipeline.stages.enhance.tensorrt import Profile, TensorRTError, cached_engine, engine_name
from support.paths import FACES, needs_shared

ENTRIES = (16, 32, 64)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    g = ProgressiveGenerator(channels=(16, 16, 8, 8), blocks=(1, 1, 1, 1))
    with torch.no_grad():  # heads away from ~0, so the network really changes the bicubic image
        for head in g.to_rgb.values():
            head.weight.normal_(0, 0.05)
    return save_generator(g, tmp_path_factory.mktemp("w") / "gen.safetensors", {"name": "test"})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def onnx_files(weights, cache):
    return {e: cached_onnx(weights, e, cache) for e in ENTRIES}


def crops(n: int, e: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, e, e, 3), dtype=np.uint8)


def reference(weights, lr: np.ndarray) -> np.ndarray:
    """The pre-backend Enhancer's arithmetic, spelled out: BGR→RGB, [-1,1], model, round, RGB→BGR."""
    model, _ = load_generator(weights)
    x = torch.from_numpy(np.ascontiguousarray(lr[..., ::-1])).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        y = ((model(x).clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(y[..., ::-1])


# ------------------------------------------------------------------ conversions and the CPU backends


def test_pre_and_postprocess_are_inverse_and_keep_bgr():
    img = crops(2, 128)
    x = B.preprocess(torch.from_numpy(img))
    assert x.shape == (2, 3, 128, 128) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert torch.allclose(x[:, 0], torch.from_numpy(img[..., 2]).float() / 127.5 - 1)  # channel 0 is R
    assert np.array_equal(B.postprocess(x).numpy(), img)


def test_torch_cpu_equals_the_reference_arithmetic(weights):
    be = B.create("torch-cpu", weights, cpu_precision="fp32")
    assert be.describe()["precision"] == "float32"
    for e in ENTRIES:
        lr = crops(3, e, e)
        y = be.run(lr)
        assert y.shape == (3, 128, 128, 3) and y.dtype == np.uint8
        assert np.array_equal(y, reference(weights, lr))


@needs_shared
def test_the_uint8_path_traces_whole_for_one_cuda_graph(weights):
    """torch-cuda captures (and torch.compile compiles) `Uint8Net`, conversions included, as one piece: a graph
    break would leave eager kernels outside it. Traced on the CPU, for crops and for fused items."""
    import torch._dynamo

    from pipeline.stages.enhance.fusion import FusionGenerator, PackedFusion

    net = B.Uint8Net(load_generator(weights)[0].eval(), torch.float32)
    packed = B.Uint8Net(PackedFusion(FusionGenerator()).eval(), torch.float32)
    lr = torch.from_numpy(crops(2, 16))
    items = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 4, 16, 16, 4), dtype=np.uint8))
    with torch.inference_mode():
        for m, x in ((net, lr), (packed, items)):
            assert torch._dynamo.explain(m)(x).graph_break_count == 0
        assert np.array_equal(net(lr).numpy(), reference(weights, lr.numpy()))


def test_torch_cpu_bf16_stays_within_a_few_levels_of_fp32_on_real_faces():
    """bf16 convolutions on the fp32 bicubic base: the shipped generator's outputs on real faces move by a
    level or two of 255, not more; `auto` takes bf16 exactly where the CPU multiplies it natively."""
    import cv2

    photos = sorted((FACES / "val").glob("*.jpg"))[:12]
    faces = [cv2.resize(cv2.imread(str(p))[40:218 - 40], (128, 128), interpolation=cv2.INTER_AREA) for p in photos]
    model, _ = load_generator(None)
    fp32, bf16 = B.TorchCPU(model, precision="fp32"), B.TorchCPU(model, precision="bf16")
    assert bf16.describe()["precision"] == "bf16 autocast" and fp32.describe()["precision"] == "float32"
    assert B.TorchCPU(model, precision="auto").autocast == cpu_bf16()[0]
    for e in ENTRIES:
        lr = np.stack([cv2.resize(f, (e, e), interpolation=cv2.INTER_AREA) for f in faces])
        a, b = fp32.run(lr).astype(float), bf16.run(lr).astype(float)
        assert 0 < np.abs(a - b).mean() < 0.3 and np.abs(a - b).max() <= 6
        assert 10 * np.log10(255**2 / ((a - b) ** 2).mean()) > 45
    with pytest.raises(ValueError, match="precision"):
        B.TorchCPU(model, precision="fp16")


def test_run_rejects_bad_input(weights):
    be = B.create("torch-cpu", weights)
    for bad in (crops(1, 24), crops(1, 16)[..., :2], crops(1, 16).astype(np.float32), crops(1, 16)[0]):
        with pytest.raises(ValueError):
            be.run(bad)


# ------------------------------------------------------------------ ONNX


def test_onnx_export_is_valid_with_dynamic_batch_and_recorded_opset(onnx_files, weights):
    import onnx

    for e, path in onnx_files.items():
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
        meta = onnx_metadata(path)
        assert meta["opset"] == str(next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")))
        assert int(meta["opset"]) >= 17
        assert meta["entry"] == str(e) and meta["weights_sha256"] == sha256(weights)
        (inp,) = proto.graph.input
        dims = inp.type.tensor_type.shape.dim
        assert dims[0].dim_param and not dims[0].dim_value  # dynamic batch
        assert [d.dim_value for d in dims[1:]] == [3, e, e]


def test_onnx_cache_is_keyed_by_weights_hash_and_reused(onnx_files, weights, cache, tmp_path):
    digest = sha256(weights)
    for e, path in onnx_files.items():
        assert path.parent == cache and path.name == onnx_name(digest, e)
        before = path.stat().st_mtime_ns
        assert cached_onnx(weights, e, cache) == path
        assert path.stat().st_mtime_ns == before  # reused, not re-exported
    other = save_generator(ProgressiveGenerator(channels=(16, 16, 8, 8), blocks=(1, 1, 1, 1)), tmp_path / "o.safetensors")
    assert onnx_name(sha256(other), 16) != onnx_name(digest, 16)
    assert not list(cache.glob(f"*{sha256(other)[:16]}*"))


def test_cache_folder_from_the_environment_gets_the_export(weights, onnx_files, tmp_path, monkeypatch):
    """No cache_dir given: the export lands in $ENHANCE_CACHE (a real export), never beside the code."""
    monkeypatch.setenv("ENHANCE_CACHE", str(tmp_path / "env-cache"))
    path = cached_onnx(weights, 16)
    assert path.parent == tmp_path / "env-cache" and path.name == onnx_files[16].name
    assert onnx_metadata(path)["weights_sha256"] == sha256(weights)


def test_onnxruntime_backend_on_the_cpu_says_why(weights, cache):
    be = B.create("onnxruntime", weights, weights_sha=sha256(weights), shapes=[(16, 16, 3)], device="cpu",
                   cache_dir=cache)
    info = be.describe()
    assert info["providers"] == ["CPUExecutionProvider"] and info["why"] == "device cpu"
    assert info["precision"] == "float32" and be.run(crops(3, 16)).shape == (3, 128, 128, 3)


def test_onnxruntime_matches_torch(onnx_files, weights):
    import onnxruntime as ort

    model, _ = load_generator(weights)
    worst = 0.0
    for e, path in onnx_files.items():
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for n in (1, 5):  # the batch axis really is dynamic
            x = torch.rand(n, 3, e, e) * 2 - 1
            (y,) = sess.run(None, {"lr": x.numpy()})
            with torch.no_grad():
                ref = model(x).numpy()
            assert y.shape == (n, 3, 128, 128)
            worst = max(worst, float(np.abs(y - ref).max()))
    assert worst < 1e-4, worst


# ------------------------------------------------------------------ the contract, across every backend


@pytest.mark.parametrize("name", list(B.BACKENDS))
def test_every_available_backend_gives_the_same_faces(name, weights, cache):
    ok, why = B.availability()[name]
    if not ok:
        pytest.skip(f"{name} unavailable here: {why}")
    kw = {"cache_dir": cache} if name in ("onnxruntime", "tensorrt") else {}
    be = B.create(name, weights, **kw)
    assert isinstance(be, B.Backend) and be.name == name
    assert be.describe()["backend"] == name
    fp16 = name in ("tensorrt", "torch-cuda")
    for e in ENTRIES:
        lr = crops(4, e, 10 + e)
        y, ref = be.run(lr), reference(weights, lr)
        assert y.shape == (4, 128, 128, 3) and y.dtype == np.uint8
        diff = np.abs(y.astype(int) - ref)
        if fp16:  # fp16 storage may move a value by a few levels, never the picture
            assert diff.mean() < 0.5 and diff.max() <= 8, (diff.mean(), diff.max())
        else:
            assert diff.max() <= 1, diff.max()
        alone = np.abs(be.run(lr[:1]).astype(int) - y[:1])  # batch composition: float rounding only
        assert alone.max() <= (8 if fp16 else 1)


def test_requested_unavailable_backend_fails_with_the_reason(weights):
    missing = {n: why for n, (ok, why) in B.availability().items() if not ok}
    if not missing:
        pytest.skip("every backend is available here")
    for name, why in missing.items():
        with pytest.raises(B.BackendUnavailable, match=name) as err:
            B.create(name, weights)
        assert why in str(err.value)
        assert isinstance(err.value, EnhanceError)  # the CLI prints it as one line


def test_unknown_backend_name_is_an_error(weights):
    with pytest.raises(B.BackendUnavailable, match="unknown enhance backend"):
        B.create("tensorflow", weights)


def test_auto_prefers_tensorrt_then_cuda_then_cpu():
    yes, no = (True, "ok"), (False, "missing")
    cpu_ort = (True, "onnxruntime 1.x, providers CPUExecutionProvider")
    gpu_ort = (True, "onnxruntime 1.x, providers CUDAExecutionProvider, CPUExecutionProvider")
    every = {"tensorrt": yes, "torch-cuda": yes, "onnxruntime": gpu_ort, "torch-cpu": yes}
    assert B.resolve("auto", every) == ["tensorrt", "torch-cuda", "onnxruntime", "torch-cpu"]
    assert B.resolve("auto", {**every, "tensorrt": no}) == ["torch-cuda", "onnxruntime", "torch-cpu"]
    assert B.resolve("auto", {**every, "tensorrt": no, "torch-cuda": no}) == ["onnxruntime", "torch-cpu"]
    cpu_only = {"tensorrt": no, "torch-cuda": no, "onnxruntime": cpu_ort, "torch-cpu": yes}
    assert B.resolve("auto", cpu_only) == ["torch-cpu", "onnxruntime"]
    assert B.resolve("onnxruntime", cpu_only) == ["onnxruntime"]
    with pytest.raises(B.BackendUnavailable, match="missing"):
        B.resolve("tensorrt", cpu_only)


def test_auto_falls_back_when_a_present_backend_fails_to_build(weights, monkeypatch):
    found = {"tensorrt": (False, "x"), "torch-cuda": (False, "x"), "onnxruntime": (True, "CUDAExecutionProvider"),
             "torch-cpu": (True, "ok")}
    monkeypatch.setattr(B, "availability", lambda: found)

    class Broken:
        @classmethod
        def build(cls, request):
            raise B.BackendUnavailable("export failed")

    monkeypatch.setitem(B.BACKENDS, "onnxruntime", Broken)
    assert B.create("auto", weights).name == "torch-cpu"
    with pytest.raises(B.BackendUnavailable, match="export failed"):
        B.create("onnxruntime", weights)


def test_backend_report_names_every_backend_and_the_pick():
    from pipeline.cli.doctor import backend_report

    lines = backend_report()
    text = "\n".join(lines)
    for name in B.BACKENDS:
        assert name in text
    assert lines[-1].strip().startswith("auto")
    for name, (ok, why) in B.availability().items():
        assert why in text


# ------------------------------------------------------------------ the Enhancer the runner uses


def test_enhancer_contract_for_the_runner(weights, cache):
    from pipeline.stages.enhance.anchor import anchor
    from pipeline.stages.enhance.stage import Enhancer

    enh = Enhancer(EnhanceConfig(weights=str(weights), batch_size=4, cpu_precision="fp32", mirror=False))
    try:
        faces = []
        for i, e in enumerate([16, 32, 16, 64, 16, 16, 16]):
            lr = crops(1, e, i)[0]
            faces.append(Face(np.zeros(4, np.float32), np.zeros((5, 2), np.float32), 0.9, lr=lr, entry=e))
        assert enh(faces) is faces
        for f in faces:
            assert f.enhanced.shape == (128, 128, 3) and f.enhanced.dtype == np.uint8
            assert np.array_equal(f.enhanced, anchor(reference(weights, f.lr[None])[0], f.lr))  # the backend's output, anchored
        assert enh.count == 7 and enh(faces[:0]) == [] and enh.count == 7
        assert enh.generator.sha256 == sha256(weights) and enh.generator.path == weights
        info = enh.info
        assert info["backend"] == B.resolve("auto")[0] and info["sha256"] == enh.generator.sha256 and info["path"] == str(weights)
        assert max(enh.generator.batcher.batches) <= 4
    finally:
        enh.close()


def test_mirror_ensemble_treats_a_face_and_its_mirror_image_alike(weights):
    """`enhance.mirror`: a face and its mirror image come out as exact mirror images of each other, which the
    plain generator does not give; the Enhancer runs it (faces in one batch of 2N) for the entries it names
    only, and the manifest says which."""
    from pipeline.stages.enhance.anchor import anchor
    from pipeline.stages.enhance.pixels import mirrored
    from pipeline.stages.enhance.stage import Enhancer

    be = B.create("torch-cpu", weights, cpu_precision="fp32")
    x, x32 = crops(3, 16, 5), crops(2, 32, 6)
    plain, plain_flipped = be.run(x), be.run(np.ascontiguousarray(x[:, :, ::-1]))
    assert np.abs(plain_flipped[:, :, ::-1].astype(int) - plain).max() > 2  # the generator alone is not symmetric
    both = mirrored(be.run)
    y = both(x)
    assert np.array_equal(both(np.ascontiguousarray(x[:, :, ::-1])), y[:, :, ::-1])
    assert np.array_equal(y, np.rint((plain.astype(np.float32) + plain_flipped[:, :, ::-1]) / 2).astype(np.uint8))
    assert np.array_equal(mirrored(be.run, (16,))(x32), be.run(x32))  # an entry not named goes through as it is
    enh = Enhancer(EnhanceConfig(weights=str(weights), batch_size=4, cpu_precision="fp32", strength=1.0, mirror=[16]))
    try:
        faces = [Face(np.zeros(4, np.float32), np.zeros((5, 2), np.float32), 0.9, lr=lr, entry=16) for lr in x]
        big = [Face(np.zeros(4, np.float32), np.zeros((5, 2), np.float32), 0.9, lr=lr, entry=32) for lr in x32]
        enh(faces + big)
        assert all(np.array_equal(f.enhanced, anchor(yi, f.lr)) for f, yi in zip(faces, y))
        assert all(np.array_equal(f.enhanced, anchor(yi, f.lr)) for f, yi in zip(big, be.run(x32)))
        assert enh.info["mirror"] == [16] and max(enh.generator.batcher.batches) <= 4
    finally:
        enh.close()
    for setting, shown in ((True, [16, 32, 64]), (False, [])):
        enh = Enhancer(EnhanceConfig(weights=str(weights), mirror=setting))
        assert enh.info["mirror"] == shown
        enh.close()


def test_a_mirrored_batch_fits_the_backend_profile(weights, onnx_files, cache, monkeypatch):
    """With `enhance.mirror` a batch of N faces reaches the backend as 2N: the batch profile (TensorRT's, through
    onnxruntime) is sized for that, so a mirrored batch runs in one go rather than in two slices."""
    from pipeline.stages.enhance.stage import Enhancer

    monkeypatch.setenv("ENHANCE_CACHE", str(cache))
    for mirror, profile in (([16], 8), (False, 4)):
        enh = Enhancer(EnhanceConfig(weights=str(weights), backend="onnxruntime", device="cpu", batch_size=4,
                                     mirror=mirror))
        try:
            assert enh.generator.backend.max_batch == profile
        finally:
            enh.close()


def test_enhancer_with_an_unavailable_backend_is_a_clear_error(weights):
    from pipeline.stages.enhance.stage import Enhancer

    missing = [n for n, (ok, _) in B.availability().items() if not ok]
    if not missing:
        pytest.skip("every backend is available here")
    with pytest.raises(B.BackendUnavailable, match="unavailable"):
        Enhancer(EnhanceConfig(weights=str(weights), batch_size=4, backend=missing[0]))


# ------------------------------------------------------------------ TensorRT engine naming and caching


def test_engine_name_changes_with_everything_that_invalidates_an_engine():
    sha = "ab" * 32
    base = dict(model_sha=sha, gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0), trt_version="10.3.0",
                entry=16, profile=Profile())
    name = engine_name(**base)
    assert name == "generator_abababababababab_e16_nvidia-h100-80gb-hbm3_sm90_trt10.3.0_b1-64-256_fp16.engine"
    assert engine_name(**base) == name  # pure
    changes = {"model_sha": "cd" * 32, "gpu_name": "NVIDIA L4", "compute_capability": (8, 9), "trt_version": "10.4.0",
               "entry": 32, "profile": Profile(1, 32, 256)}
    names = {engine_name(**{**base, k: v}) for k, v in changes.items()}
    assert len(names) == len(changes) and name not in names
    assert engine_name(**{**base, "profile": Profile(fp16=False)}) != name
    assert engine_name(**{**base, "compute_capability": "9.0"}) == name
    weird = engine_name(**{**base, "gpu_name": "GeForce RTX 4090 / (laptop)"})
    assert "/" not in weird and " " not in weird and "(" not in weird


def test_profile_is_checked():
    assert Profile().min == 1 and Profile().opt == 64 and Profile().max == 256
    for bad in ((0, 1, 2), (4, 2, 8), (1, 64, 32)):
        with pytest.raises(ValueError):
            Profile(*bad)


def test_engine_cache_builds_once_and_reuses(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        tmp.write_bytes(b"engine")

    path = tmp_path / "engines" / "x.engine"
    assert cached_engine(path, build) == (path, True)
    assert cached_engine(path, build) == (path, False)
    assert len(calls) == 1 and path.read_bytes() == b"engine"

    def failing(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("builder crashed")

    bad = tmp_path / "engines" / "y.engine"
    with pytest.raises(RuntimeError):
        cached_engine(bad, failing)
    assert not bad.exists() and not list(bad.parent.glob(".*tmp"))  # no half file for the next run to trust


def test_build_engine_command_exports_onnx_then_explains_missing_tensorrt(weights, cache, capsys):
    from pipeline.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["build-engine", "--weights", str(weights), "--cache", str(cache), "--entries", "16"])
    ok, why = B.availability()["tensorrt"]
    if ok:
        pytest.skip("TensorRT is present: the GPU test builds the engine")
    with pytest.raises(TensorRTError, match="TensorRT"):
        args.func(args)
    assert "opset" in capsys.readouterr().out
    args = parser.parse_args(["build-engine", "--weights", str(weights), "--cache", str(cache), "--entries", "16",
                              "--onnx-only"])
    assert args.func(args) == 0


# ------------------------------------------------------------------ GPU only


def test_tensorrt_builds_caches_and_matches_torch(weights, tmp_path):
    ok, why = B.availability()["tensorrt"]
    if not ok:
        pytest.skip(f"TensorRT path not executable here: {why}")
    from pipeline.stages.enhance.tensorrt import ensure_engines

    first = ensure_engines(weights, (16,), Profile(1, 4, 16), tmp_path / "cache")
    mtime = first[16].stat().st_mtime_ns
    again = ensure_engines(weights, (16,), Profile(1, 4, 16), tmp_path / "cache")
    assert again == first and first[16].stat().st_mtime_ns == mtime
    be = B.TensorRT(weights, Profile(1, 4, 16), tmp_path / "cache", shapes=[(16, 16, 3)])
    lr = crops(20, 16)  # larger than the profile's max: run in slices
    diff = np.abs(be.run(lr).astype(int) - reference(weights, lr))
    assert diff.mean() < 0.5 and diff.max() <= 8


def test_torch_cuda_graphs_and_batches(weights):
    ok, why = B.availability()["torch-cuda"]
    if not ok:
        pytest.skip(f"torch-cuda not executable here: {why}")
    be = B.create("torch-cuda", weights)
    for n in (1, 3, 300):  # bucket padding, and beyond the largest graph bucket / across upload chunks
        lr = crops(n, 32, n)
        diff = np.abs(be.run(lr).astype(int) - reference(weights, lr))
        assert diff.mean() < 0.5 and diff.max() <= 8


# ------------------------------------------------------------------ bench helpers (no model needed)


def test_bench_cell_and_loop_report_throughput_and_latency():
    from pipeline.run.bench import bench_cell, bench_loop, table

    def fake(x):
        return np.zeros((len(x), 128, 128, 3), np.uint8)

    cell = bench_cell(fake, 16, 8, budget_s=0.05)
    assert cell["runs"] >= 1 and cell["faces_per_s"] > 0 and cell["p99_ms"] >= cell["p50_ms"] >= 0
    loop = bench_loop(fake, 32, faces=4)
    assert loop["faces_per_s"] > 0
    text = table([{"backend": "x", "kind": "loop", **loop},
                  {"backend": "x", "kind": "batch", "speedup_vs_loop": 1.0, **cell},
                  {"backend": "tensorrt", "skipped": "no GPU"}])
    assert "skipped: no GPU" in text and "| x | 16 | 8 |" in text


def test_half_storage_emulation_changes_little_and_restores(weights):
    from pipeline.run.bench import _HalfStorage

    model, _ = load_generator(weights)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        ref = model(x)
        with _HalfStorage(torch.float16):
            y = model(x)
        after = model(x)
    assert y.dtype == torch.float32 and torch.equal(after, ref)  # the mode ends with its block
    assert 0 < float((y - ref).abs().max()) < 0.01
