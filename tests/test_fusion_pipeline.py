"""Track fusion in the pipeline: the window around a face, packed items through the backends, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.types import Face, Track
from pipeline.stages.enhance.backends import OnnxRuntime, TorchCPU, item_shapes
from pipeline.stages.enhance.fusion import FusionGenerator, PackedFusion, pack, save_fusion
from pipeline.stages.enhance.window import FusionWindow
from support.paths import MODELS, VIDEO, needs_shared, run_cli

pytestmark = pytest.mark.slow  # end-to-end runs of real video and servers: the full suite, not the fast lane


def _face(frame: int, entry: int = 32) -> Face:
    f = Face(box=np.zeros(4, np.float32), kps=np.zeros((5, 2), np.float32), score=0.9, frame_index=frame,
             time=frame / 25, track_id=1)
    f.entry, f.lr = entry, np.full((entry, entry, 3), frame, np.uint8)
    return f


def test_window_is_centred_for_files_and_past_only_for_cameras():
    track, window = Track(1, "cam"), FusionWindow(8, centred=True)
    faces = [_face(i, entry=16 if i == 9 else 32) for i in range(20)]
    for f in faces[:12]:
        window.remember(track, f)
    assert len(track.recent) == 12  # k + lookahead: bounded however long the track gets
    target = faces[7]
    assert window.ready(track, target) and not window.ready(track, faces[8])
    window.attach(track, target)
    got = [n.frame_index for n in target.neighbours]
    assert got == [6, 8, 5, 4, 10, 3, 11]  # nearest first, ≤ 4 ahead, frame 9 (another entry size) left out
    assert all(n.crop is None and n.lr is not None for n in target.neighbours)

    live, cam = Track(2, "cam"), FusionWindow(8, centred=False)
    for f in faces[:12]:
        cam.remember(live, f)
    assert len(live.recent) == 8 and cam.ready(live, faces[11])
    cam.attach(live, faces[11])
    assert [n.frame_index for n in faces[11].neighbours] == [10, 8, 7, 6, 5, 4]  # only the past: no latency


@pytest.fixture(scope="module")
def fusion_weights(tmp_path_factory) -> Path:
    """A fusion file whose trunk is the shipped single-frame generator (registration untrained)."""
    from pipeline.stages.enhance.generator import load_generator

    torch.manual_seed(0)
    base = load_generator(None)[0]
    g = FusionGenerator(base.config["channels"], base.config["blocks"], path64=base.config.get("path64"))
    g.base.load_state_dict(base.state_dict())
    for p in g.register.parameters():  # make the registration heads do something, so fusion is visible
        p.data.add_(torch.randn_like(p) * 0.01)
    return save_fusion(g, tmp_path_factory.mktemp("fusion") / "fusion.safetensors", {"name": "fusion_test"})


def test_packed_items_run_on_torch_and_onnxruntime_alike(fusion_weights: Path, tmp_path: Path):
    from pipeline.stages.enhance.fusion import load_fusion

    model = PackedFusion(load_fusion(fusion_weights)[0]).eval()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 6, 32, 32, 3), dtype=np.uint8)
    items = np.stack([pack(f[0], list(f[1 : 1 + n]), 8) for f, n in zip(frames, (5, 2, 7))])
    assert items.shape == (3, 8, 32, 32, 4) and (items[1, 3:, ..., 3] == 0).all()
    cpu = TorchCPU(model, precision="fp32").run(items)  # the exported graph is fp32: compare like with like
    ort = OnnxRuntime(fusion_weights, model, cache_dir=tmp_path, shapes=[(8, 32, 32, 4)]).run(items)
    assert cpu.shape == (3, 128, 128, 3)
    assert np.abs(cpu.astype(int) - ort.astype(int)).max() <= 1  # one exported graph, a dynamic batch axis
    bf16 = TorchCPU(model, precision="bf16").run(items).astype(int)  # the default on a CPU with native bf16
    assert np.abs(bf16 - cpu.astype(int)).max() <= 4 and np.abs(bf16 - cpu.astype(int)).mean() < 0.5
    # one observation alone runs the single-frame trunk (K = 1 calls it directly); the packed input's memory
    # layout may pick other convolution kernels, so a rare pixel rounds the other way
    alone = TorchCPU(model).run(pack(frames[0, 0], [], 8)[None]).astype(int)
    single = TorchCPU(model.fusion.base).run(frames[0, :1]).astype(int)
    assert np.abs(alone - single).max() <= 1 and (alone != single).mean() < 1e-3
    assert item_shapes((32,), 8) == [(1, 32, 32, 4), (8, 32, 32, 4)]


def test_fusion_registers_the_entry_paths_own_features(tmp_path: Path):
    from pipeline.stages.enhance.fusion import load_fusion

    torch.manual_seed(0)
    g = FusionGenerator((32, 24, 16, 8), (2, 1, 1, 1), hidden=8, path64=[20, 2], path32=[22, 2]).eval()
    assert g.register["64"].net[0].in_channels == 2 * 20  # target + neighbour, at the path's own width
    assert g.register["32"].net[0].in_channels == 2 * 22
    loaded, meta = load_fusion(save_fusion(g, tmp_path / "f.safetensors"))
    assert meta["arch"]["path64"] == [20, 2] and meta["arch"]["path32"] == [22, 2]
    for e in (32, 64):
        x = torch.rand(2, 3, 3, e, e) * 2 - 1
        with torch.no_grad():
            assert g(x).shape == (2, 3, 128, 128)
            assert torch.equal(g(x[:, :1]), g.base(x[:, 0]))  # one observation: the single-frame path
            assert (loaded(x) - g(x)).abs().max() < 5e-3  # fp16 storage only


@needs_shared
def test_fused_tiles_say_which_frames_they_rest_on(fusion_weights: Path, tmp_path: Path):
    out = tmp_path / "run"
    proc = run_cli("process", str(VIDEO / "office_fisheye_cctv.mp4"), "--out", str(out), "--models", str(MODELS),
                   "--quiet", "--set", "source.max_frames=160", "--set", "enhance.fusion=8",
                   "--set", f"enhance.weights={fusion_weights}", "--set", "output.video=false", timeout=900)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generator"]["fusion_frames"] == 8
    fused = 0
    for tj in (out / "tracks").glob("*/track.json"):
        doc = json.loads(tj.read_text())
        frames = {o["frame"] for o in doc["observations"]}
        for o in doc["observations"]:
            if not o["enhanced"]:
                continue
            assert len(o["fused_frames"]) <= 7 and set(o["fused_frames"]) <= frames - {o["frame"]}
            assert all(f - o["frame"] <= 4 for f in o["fused_frames"])  # centred: at most K/2 ahead
            fused += bool(o["fused_frames"])
            side = json.loads((tj.parent / o["files"]["enhanced"].replace(".png", ".json")).read_text())
            assert [f["frame"] for f in side.get("fused_from", [])] == o["fused_frames"]
    assert fused >= 5
