"""The generator's contract: every entry → (B,3,128,128) in [-1,1]; fade-in; fp16 safetensors round-trip without pickle."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from pipeline.core.errors import EnhanceError
from pipeline.stages.enhance.generator import DEFAULT_WEIGHTS, ProgressiveGenerator, load_generator, save_generator, trained_steps


@pytest.fixture(scope="module")
def model() -> ProgressiveGenerator:
    torch.manual_seed(0)
    return ProgressiveGenerator().eval()


@pytest.mark.parametrize("entry", [16, 32, 64])
def test_every_entry_gives_128_in_range(model, entry):
    x = torch.rand(3, 3, entry, entry) * 2 - 1
    with torch.no_grad():
        y = model(x)
    assert y.shape == (3, 3, 128, 128)
    assert y.dtype == torch.float32
    assert float(y.min()) >= -1.0 and float(y.max()) <= 1.0
    assert torch.isfinite(y).all()


def test_untrained_model_starts_at_bicubic(model):
    # to-RGB heads predict a residual over bicubic and start near zero
    x = torch.rand(2, 3, 16, 16) * 1.6 - 0.8
    with torch.no_grad():
        y = model(x)
    bic = torch.nn.functional.interpolate(x, size=(128, 128), mode="bicubic", align_corners=False).clamp(-1, 1)
    assert (y - bic).abs().mean() < 0.02


def test_bad_inputs_rejected(model):
    for shape in [(1, 3, 24, 24), (1, 1, 16, 16), (1, 3, 16, 32), (3, 16, 16), (1, 3, 128, 128)]:
        with pytest.raises(ValueError):
            model(torch.zeros(shape))


def test_progressive_outputs_and_fade(model):
    x = torch.rand(2, 3, 16, 16) - 0.5  # well inside [-1,1], so the output clamp plays no part
    with torch.no_grad():
        assert model(x, out_size=32).shape == (2, 3, 32, 32)
        assert model(x, out_size=64).shape == (2, 3, 64, 64)
        # alpha=0 on the 64 stage is exactly the 32 stage's image, upsampled
        faded = model(x, out_size=64, alpha=0.0)
        prev = torch.nn.functional.interpolate(model(x, out_size=32), size=(64, 64), mode="bicubic", align_corners=False)
        assert torch.allclose(faded, prev.clamp(-1, 1), atol=1e-5)
        assert not torch.allclose(model(x, out_size=64, alpha=1.0), faded, atol=1e-6)


def test_entries_use_distinct_stages(model):
    # a 32 px entry must not go through the 16 px stage: perturbing that stage leaves it unchanged
    m = ProgressiveGenerator().eval()
    x32 = torch.rand(1, 3, 32, 32) * 2 - 1
    x16 = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        a32, a16 = m(x32), m(x16)
        for p in m.stages[0].parameters():
            p.add_(0.5)
        assert torch.equal(m(x32), a32)
        assert not torch.equal(m(x16), a16)


def test_path64_is_the_64_px_entry_s_own(tmp_path: Path):
    # the 64 px entry's own path: changing it leaves the 16/32 px entries bit for bit; its context reads the 32 px stage
    torch.manual_seed(0)
    m = ProgressiveGenerator((32, 24, 16, 8), (2, 1, 1, 1), path64=[20, 2]).eval()
    for p in m.parameters():  # trained-looking weights (the context starts at zero)
        p.data.add_(torch.randn_like(p) * 0.05)
    xs = {e: torch.rand(2, 3, e, e) * 2 - 1 for e in (16, 32, 64)}
    with torch.no_grad():
        before = {e: m(x) for e, x in xs.items()}
        for p in m.path64.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        assert torch.equal(m(xs[16]), before[16]) and torch.equal(m(xs[32]), before[32])
        assert not torch.allclose(m(xs[64]), before[64], atol=1e-3)
        after = m(xs[64])
        for p in m.stages[1].parameters():  # the 32 px stage is the 64 px entry's context
            p.add_(torch.randn_like(p) * 0.01)
        with_context = m(xs[64])
        assert not torch.allclose(with_context, after, atol=1e-4)
        for p in m.stages[2].parameters():  # ... and the shared 64 px stage is no longer on its way
            p.add_(torch.randn_like(p) * 0.01)
        assert torch.equal(m(xs[64]), with_context)
    loaded, meta = load_generator(save_generator(m, tmp_path / "p64.safetensors"))
    assert meta["arch"]["path64"] == [20, 2] and loaded.num_params() == m.num_params()
    with torch.no_grad():
        assert (loaded(xs[64]) - with_context).abs().max() < 5e-3
    assert m.flops(64) > ProgressiveGenerator((32, 24, 16, 8), (2, 1, 1, 1)).flops(64)
    with pytest.raises(ValueError):
        ProgressiveGenerator(path64=[20])


def test_path32_is_the_32_px_entry_s_own(tmp_path: Path):
    # the 32 px entry's own path: changing it leaves the 16/64 px entries bit for bit; its context reads the
    # 16 px stage, and the shared 32 px stage (the 64 px entry's context) is no longer on its way
    torch.manual_seed(1)
    m = ProgressiveGenerator((32, 24, 16, 8), (2, 1, 1, 1), path64=[20, 2], path32=[24, 2]).eval()
    for p in m.parameters():  # trained-looking weights (the contexts start at zero)
        p.data.add_(torch.randn_like(p) * 0.05)
    xs = {e: torch.rand(2, 3, e, e) * 2 - 1 for e in (16, 32, 64)}
    with torch.no_grad():
        before = {e: m(x) for e, x in xs.items()}
        for p in m.path32.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        assert torch.equal(m(xs[16]), before[16]) and torch.equal(m(xs[64]), before[64])
        assert not torch.allclose(m(xs[32]), before[32], atol=1e-3)
        after = m(xs[32])
        for p in m.stages[0].parameters():  # the 16 px stage is the 32 px entry's context
            p.add_(torch.randn_like(p) * 0.01)
        with_context = m(xs[32])
        assert not torch.allclose(with_context, after, atol=1e-4)
        for layer in (m.from_rgb["32"], m.stages[1], m.stages[2], m.refine, m.to_rgb):  # shared: not on its way
            for p in layer.parameters():
                p.add_(torch.randn_like(p) * 0.01)
        assert torch.equal(m(xs[32]), with_context)
        with pytest.raises(ValueError, match="128 px only"):
            m(xs[32], out_size=64)
    assert m.entry_channels() == {16: 32, 32: 24, 64: 20}
    loaded, meta = load_generator(save_generator(m, tmp_path / "p32.safetensors"))
    assert meta["arch"]["path32"] == [24, 2] and loaded.num_params() == m.num_params()
    with torch.no_grad():
        assert (loaded(xs[32]) - with_context).abs().max() < 5e-3
    assert m.flops(32) > ProgressiveGenerator((32, 24, 16, 8), (2, 1, 1, 1), path64=[20, 2]).flops(32)
    with pytest.raises(ValueError):
        ProgressiveGenerator(path32=[20])


def test_safetensors_roundtrip_fp16_no_pickle(model, tmp_path: Path):
    path = save_generator(model, tmp_path / "g.safetensors", {"steps": 123, "trained_on": "test"})
    raw = path.read_bytes()
    assert b"pickle" not in raw[:64] and raw[8:9] == b"{"  # safetensors: u64 header length, then JSON
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    assert all(v["dtype"] == "F16" for k, v in header.items() if k != "__metadata__")
    assert json.loads(header["__metadata__"]["arch"]) == model.config
    loaded, meta = load_generator(path)
    assert meta["steps"] == 123 and meta["trained_on"] == "test" and meta["arch"] == model.config
    assert not loaded.training
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max() < 5e-3  # fp16 storage only


def test_other_architectures_rebuild_from_file(tmp_path: Path):
    m = ProgressiveGenerator(channels=[16, 16, 8, 8], blocks=[1, 1, 1, 0]).eval()
    loaded, meta = load_generator(save_generator(m, tmp_path / "small.safetensors"))
    assert meta["arch"] == {"channels": [16, 16, 8, 8], "blocks": [1, 1, 1, 0]}
    assert loaded.num_params() == m.num_params()


def test_missing_or_corrupt_weights_are_user_errors(tmp_path: Path):
    with pytest.raises(EnhanceError):
        load_generator(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(EnhanceError):
        load_generator(bad)


def test_size_and_cost_budget(model):
    assert model.num_params() < 4e6  # well below PFSR's 8.97 M
    assert model.flops(16) < 3.5e9  # well below PFSR's 10.5 GFLOP per face


def test_shipped_weights_load_and_fit_budget():
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("no shipped weights in engines/")
    assert DEFAULT_WEIGHTS.stat().st_size <= 20e6
    m, meta = load_generator()
    assert trained_steps(meta) > 0  # its own steps, or every network it is the mean of (`lab average`)
    with torch.no_grad():
        assert m(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 128, 128)


def test_compiles_without_graph_breaks_and_matches_eager(model):
    """torch-cuda's `jit` mode compiles the generator whole: a graph break would leave pieces uncompiled
    under its CUDA graphs. Checked on the CPU, where the compiled output must equal eager's."""
    import torch._dynamo

    for entry in (16, 32, 64):
        x = torch.rand(2, 3, entry, entry) * 2 - 1
        assert torch._dynamo.explain(model)(x).graph_break_count == 0
    torch._dynamo.reset()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.inference_mode():
        assert torch.allclose(torch.compile(model)(x), model(x), atol=1e-5)
