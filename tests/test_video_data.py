"""`prepare-video` on real clips and stills, the mixed training batch, and the per-tile confidence."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from support.paths import FACES, HEADS, MODELS

pytestmark = pytest.mark.slow  # end-to-end runs of real video and servers: the full suite, not the fast lane

STILLS = FACES / "train"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a.astype(float) - b.astype(float)) ** 2), 1e-9)))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    from pipeline.cli import main

    out = tmp_path_factory.mktemp("seq")
    stills = out / "stills"
    stills.mkdir()
    for p in sorted(STILLS.glob("*.jpg"))[:8]:
        (stills / p.name).write_bytes(p.read_bytes())
    rc = main(["lab", "prepare-video", "--clips", str(HEADS / "vr3.mp4"), str(HEADS / "d0.mp4"), "--renders", "1",
               "--stills", str(stills), "--out", str(out), "--models", str(MODELS)])
    assert rc == 0
    return out / "train.npz"


@pytest.mark.skipif(not HEADS.is_dir(), reason="talking-head clips not in ../shared")
def test_prepare_video_cuts_inputs_and_targets_together(cache: Path):
    from pipeline.lab.train.data import SequenceSet

    s = SequenceSet(cache)
    assert len(s) > 100
    assert set(np.unique(s.seq)) >= {0}  # the clip's sequence, then one per still
    assert s.images.shape[1:] == (128, 128, 3) and s.attention.shape[1:] == (64, 64)
    # every input is registered with its target: the bicubic upsampling of the input resembles it
    scores = [_psnr(cv2.resize(s.input(i), (128, 128), interpolation=cv2.INTER_CUBIC), s.images[i]) for i in range(len(s))]
    assert np.median(scores) > 21
    # inputs enter at the size the camera resolved: faces ≥ 26 px never at 16
    assert all(s.entry[i] in (32, 64) for i in range(len(s)) if s.face_px[i] >= 26)
    # consecutive frames of the clip stay together as one sequence
    first = s.frame[s.seq == 0]
    assert len(first) > 60 and (np.diff(first) >= 1).all()


@pytest.mark.skipif(not HEADS.is_dir(), reason="talking-head clips not in ../shared")
def test_prepare_video_keeps_evaluation_people_out(cache: Path, tmp_path: Path, capsys):
    from pipeline.cli import main
    from pipeline.lab.train.data import SequenceSet

    # d0 is in the eval list of configs/video_split.yaml: the cache above holds vr3's sequence and 6-frame stills only
    s = SequenceSet(cache)
    lengths = np.bincount(s.seq)
    assert (lengths > 6).sum() == 1
    split = tmp_path / "split.yaml"
    split.write_text("train: [vr3]\neval: [d0]\n")
    rc = main(["lab", "prepare-video", "--clips", str(HEADS / "d9.mp4"), "--split", str(split), "--stills", "",
               "--out", str(tmp_path / "o"), "--models", str(MODELS)])
    assert rc == 2 and "d9.mp4 is not in the train list" in capsys.readouterr().err


@pytest.mark.skipif(not HEADS.is_dir(), reason="talking-head clips not in ../shared")
def test_batches_mix_video_frames_and_stills(cache: Path, tmp_path: Path):
    from pipeline.lab.train.data import SequenceSet, make_batch

    class Stills:  # a stand-in FaceSet of three real 128 px targets (the video cache's own images)
        def __init__(self, s: SequenceSet) -> None:
            self.images, self.attention = s.images[:3], s.attention[:3]

        def __len__(self) -> int:
            return 3

    s = SequenceSet(cache)
    e = 32 if len(s.by_entry[32]) else 64
    lr, hr, att = make_batch(Stills(s), 0, 1, 16, e, video=s, video_p=1.0)
    assert lr.shape == (16, 3, e, e) and hr.shape == (16, 3, 128, 128) and att.shape == (16, 64, 64)
    lr2, _, _ = make_batch(Stills(s), 0, 1, 16, e, video=s, video_p=1.0)
    assert np.array_equal(lr.numpy(), lr2.numpy())  # a pure function of (seed, step)


@pytest.mark.skipif(not HEADS.is_dir(), reason="talking-head clips not in ../shared")
def test_pack_video_fits_the_budget_and_keeps_whole_sequences(cache: Path, tmp_path: Path, capsys):
    from pipeline.cli import main
    from pipeline.lab.train.data import SequenceSet

    full = SequenceSet(cache)
    budget = cache.stat().st_size / 1e6 / 3
    out = tmp_path / "pack.npz"
    assert main(["lab", "pack-video", str(cache), "--max-mb", f"{budget:.3f}", "--out", str(out)]) == 0
    assert out.stat().st_size <= budget * 1e6
    p = SequenceSet(out)
    assert 0 < len(p) < len(full)
    where = {(int(q), int(f)): i for i, (q, f) in enumerate(zip(full.seq, full.frame))}
    for q in np.unique(p.seq):  # whole sequences, never a frame picked out of one
        assert (p.seq == q).sum() == (full.seq == q).sum()
    for i in range(len(p)):  # inputs and targets exactly as cached; attention within JPEG error
        j = where[(int(p.seq[i]), int(p.frame[i]))]
        assert p.entry[i] == full.entry[j]
        assert np.array_equal(p.input(i), full.input(j)) and np.array_equal(p.images[i], full.images[j])
        assert np.abs(p.attention[i].astype(int) - full.attention[j]).mean() < 3
    assert main(["lab", "pack-video", str(out), "--out", str(tmp_path / "again.npz")]) == 2
    assert "already packed" in capsys.readouterr().err


def test_confidence_follows_resolution_and_input_agreement():
    from pipeline.core.geometry import TEMPLATE, similarity
    from pipeline.core.types import Face
    from pipeline.io.provenance import tile_record
    from pipeline.io.records import Observation
    from pipeline.stages.enhance.confidence import LOW, assess

    rng = np.random.default_rng(0)
    lr = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (32, 32), interpolation=cv2.INTER_CUBIC)

    def face(scale: float, enhanced: np.ndarray) -> Face:
        f = Face(box=np.array([0, 0, 30, 30], np.float32), kps=(TEMPLATE / scale).astype(np.float32), score=0.9)
        f.matrix, f.lr, f.enhanced = similarity(f.kps), lr, enhanced
        return assess(f)

    faithful = cv2.resize(lr, (128, 128), interpolation=cv2.INTER_CUBIC)
    big, small = face(128 / 48, faithful), face(128 / 15, faithful)  # 48 vs 15 source px across the crop
    assert big.consistency < 3 and big.confidence > 0.8
    assert small.confidence < LOW
    invented = face(128 / 48, 255 - faithful)  # sharp, but not what the camera saw
    assert invented.consistency > 40 and invented.confidence < LOW
    obs = Observation.of(invented)
    rec = tile_record("enhanced", obs)
    assert rec["low_confidence"] and "too small or too damaged" in rec["warning"]
    assert rec["confidence"] == round(invented.confidence, 4)
    assert rec["input_mismatch"] == round(invented.consistency, 3)
    assert "confidence" not in tile_record("original", obs)


@pytest.mark.skipif(not HEADS.is_dir(), reason="talking-head clips not in ../shared")
def test_fusion_trains_on_sequences_and_falls_back_to_one_frame(cache: Path, tmp_path: Path):
    """A small fusion generator fine-tunes from single-frame weights on real sequences, exports without pickle,
    and with every neighbour masked out is exactly its single-frame trunk."""
    import torch

    from pipeline.cli import main
    from pipeline.lab.train.config import load_train_config
    from pipeline.lab.train.data import SequenceSet
    from pipeline.lab.train.trainer import Trainer
    from pipeline.stages.enhance.fusion import load_fusion
    from pipeline.stages.enhance.generator import ProgressiveGenerator, save_generator

    s = SequenceSet(cache)
    stills = tmp_path / "stills"  # a tiny prepared still set: the cache's own aligned targets
    (stills / "train").mkdir(parents=True)
    names = [f"{i}.jpg" for i in range(6)]
    for n, img in zip(names, s.images[:6]):
        cv2.imwrite(str(stills / "train" / n), img[:, :, ::-1])
    np.savez(stills / "train.npz", names=np.array(names), identities=np.array([""] * 6), attention=s.attention[:6])
    torch.manual_seed(0)
    init = save_generator(ProgressiveGenerator((16, 16, 8, 8), (1, 1, 1, 1)), tmp_path / "single.safetensors")
    cfg = load_train_config(over={
        "data": str(stills), "video": str(cache), "video_p": 1.0, "out": str(tmp_path / "run"), "init": str(init),
        "models": str(MODELS), "fusion": 4, "fusion_hidden": 8, "steps": 4, "batch": 4, "val_every": 0,
        "model": {"channels": [16, 16, 8, 8], "blocks": [1, 1, 1, 1]}, "grow": {"to64": 0, "to128": 0, "fade": 1},
        "entries": [32], "entry_weights": [1.0], "loss": {"heatmap": 0.0, "adv": 0.0}})
    res = Trainer(cfg, log=lambda m: None).fit()
    g, meta = load_fusion(res["export"])
    assert meta["fusion_frames"] == 4 and meta["steps"] == 4
    x = torch.rand(2, 4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        alone = g(x, torch.tensor([[1, 0, 0, 0], [1, 0, 0, 0]]))
        assert torch.equal(alone, g.base(x[:, 0]))
        assert not torch.equal(g(x, torch.ones(2, 4)), alone)  # neighbours do change the output
    assert main(["lab", "export", str(tmp_path / "run" / "ckpt_last.pt"), "--out", str(tmp_path / "f.safetensors")]) == 0
    assert load_fusion(tmp_path / "f.safetensors")[1]["fusion_frames"] == 4


def test_low_confidence_is_visible_on_the_tile():
    from pipeline.core.draw import AMBER, mark_enhanced

    plain = mark_enhanced(np.full((128, 128, 3), 120, np.uint8))
    flagged = mark_enhanced(np.full((128, 128, 3), 120, np.uint8), low_confidence=True)
    assert (plain[:8, :40] == 120).all()  # the face's upper half is untouched on a confident tile
    assert (flagged[2, 2] == AMBER).all()  # an amber "low confidence" label, top left
    assert np.array_equal(flagged[64:], plain[64:])  # the AI-enhanced mark itself is the same


@pytest.mark.skipif(not HEADS.is_dir(), reason="talking-head clips not in ../shared")
def test_caches_join_as_one(cache: Path, tmp_path: Path):
    from pipeline.cli import main
    from pipeline.lab.train.data import SequenceSet

    packed = tmp_path / "pack.npz"  # a second cache in the other format, as a later `prepare-video` + `pack-video` gives
    assert main(["lab", "pack-video", str(cache), "--max-mb", f"{cache.stat().st_size / 3e6:.3f}",
                 "--out", str(packed)]) == 0
    a, b = SequenceSet(cache), SequenceSet(packed)
    both = SequenceSet([str(cache), str(packed)])
    assert len(both) == len(a) + len(b)
    assert set(np.unique(both.seq[: len(a)])).isdisjoint(np.unique(both.seq[len(a):]))  # sequences stay apart
    for i in (0, len(a) - 1):
        assert np.array_equal(both.input(i), a.input(i)) and np.array_equal(both.images[i], a.images[i])
    for i in range(len(b)):  # every frame of the second cache keeps its own input, target and neighbours
        j = len(a) + i
        assert both.entry[j] == b.entry[i] and np.array_equal(both.input(j), b.input(i))
        assert np.array_equal(both.images[j], b.images[i])
        assert [k - len(a) for k in both.window(j, 4, True)] == b.window(i, 4, True)
