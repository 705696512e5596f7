"""Training on real prepared faces: prepare output, degradation chain, loss falls, exact resume, CLI errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from support.paths import FACES, MODELS, require


def test_prepare_writes_aligned_crops_and_attention(prepared: Path):
    z = np.load(prepared / "train.npz", allow_pickle=False)
    assert len(z["names"]) == 12 and "blank.jpg" not in list(z["names"])
    assert z["attention"].shape == (12, 64, 64) and z["attention"].dtype == np.uint8
    assert z["identities"][0] != ""  # identities come from identities.csv
    for n in z["names"]:
        img = cv2.imread(str(prepared / "train" / str(n)))
        assert img.shape == (128, 128, 3)
    # the attention map concentrates on the face: eyes/mouth region brighter than the corners
    att = z["attention"].astype(np.float32).mean(0)
    assert att[24:48, 16:48].mean() > 2 * att[:8, :8].mean()


def test_degradation_chain():
    from pipeline.lab.train.degrade import DegradeConfig, clean, degrade, h264_roundtrip

    require(FACES / "val")
    hr = cv2.imread(str(sorted((FACES / "val").glob("*.jpg"))[0]))
    hr = cv2.resize(hr, (128, 128), interpolation=cv2.INTER_AREA)
    for e in (16, 32, 64):
        a = degrade(hr, e, np.random.default_rng(5))
        b = degrade(hr, e, np.random.default_rng(5))
        assert a.shape == (e, e, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)  # fixed seed → same degradation (eval's cctv mode relies on it)
        assert np.array_equal(degrade(hr, e, np.random.default_rng(1), DegradeConfig(p_clean=1.0)), clean(hr, e))
    outs = [degrade(hr, 16, np.random.default_rng(s), DegradeConfig(p_clean=0.0)) for s in range(8)]
    diffs = [np.abs(o.astype(int) - clean(hr, 16).astype(int)).mean() for o in outs]
    assert max(diffs) > 3 and len({round(d, 3) for d in diffs}) > 4  # really random, really degraded
    h = h264_roundtrip(clean(hr, 32), 35)
    assert h.shape == (32, 32, 3) and not np.array_equal(h, clean(hr, 32))


def test_motion_blur_does_not_move_the_face():
    """The motion-blur kernel is a line of the asked length through its centre, at any angle: blurring smears a
    face along the motion and never shifts it (an off-centre kernel taught the generator to move faces)."""
    from pipeline.lab.train.degrade import _motion_kernel

    for length, angle in [(8.0, 0.0), (16.0, 30.0), (20.0, 90.0), (12.5, 135.0), (24.0, 170.0)]:
        k = _motion_kernel(length, angle)
        ys, xs = np.mgrid[: k.shape[0], : k.shape[1]]
        c = k.shape[0] // 2
        assert k.sum() == pytest.approx(1.0) and abs((k * xs).sum() - c) < 0.75 and abs((k * ys).sum() - c) < 0.75
        extent = np.hypot(*np.ptp(np.array(np.nonzero(k)), axis=1))
        assert length - 2 <= extent <= length + 2  # as long as asked


def _cfg(prepared: Path, out: Path, **kw):
    from pipeline.lab.train.config import load_train_config

    base = {
        "data": str(prepared),
        "out": str(out),
        "models": str(MODELS),
        "threads": 2,
        "device": "cpu",
        "model": {"channels": [32, 24, 16, 8], "blocks": [2, 1, 1, 1]},
        "steps": 30,
        "batch": 4,
        "lr": 3e-3,
        "lr_final": 3e-3,
        "ema": 0.0,
        "grow": {"to64": 2, "to128": 4, "fade": 2},
        "loss": {"heatmap_every": 3, "adv_start": 24},
        "val_every": 15,
        "val_faces": 4,
        "ckpt_every": 100,
    }
    base.update(kw)
    return load_train_config(over=base)


def _fixed_loss(model, prepared: Path) -> float:
    from pipeline.lab.train.data import FaceSet, to_tensor
    from pipeline.lab.train.degrade import clean

    faces = FaceSet(prepared, "train")
    with torch.no_grad():
        lr = to_tensor(np.stack([clean(im, 16) for im in faces.images]))
        return float((model.eval()(lr) - to_tensor(faces.images)).abs().mean())


def test_cpu_training_loss_falls(prepared: Path, tmp_path: Path):
    from pipeline.lab.train.trainer import Trainer
    from pipeline.stages.enhance.generator import load_generator

    # a clean 16 px entry from the first step, so 30 CPU steps measurably fit these 12 real faces
    cfg = _cfg(prepared, tmp_path / "run", degrade_p=0.0, entries=[16], entry_weights=[1.0],
               grow={"to64": 0, "to128": 0, "fade": 1}, loss={"heatmap_every": 3, "adv_start": 24, "mse": 1.0})  # fmt: skip
    t = Trainer(cfg, log=lambda m: None)
    before = _fixed_loss(t.G, prepared)
    res = t.fit()
    after = _fixed_loss(t.G, prepared)
    assert res["step"] == 30 and res["samples"] == 120
    assert after < before * 0.97, (before, after)
    h = res["history"]
    assert np.mean(h[-10:]) < np.mean(h[:10])  # the training loss falls too
    log = (tmp_path / "run" / "train.log").read_text()
    assert "val psnr16" in log and "samples/s" in log and "adv" in log and "hm" in log and "mse" in log
    g, meta = load_generator(tmp_path / "run" / "generator.safetensors")
    assert meta["steps"] == 30 and meta["arch"] == {"channels": cfg.model.channels, "blocks": cfg.model.blocks}


def test_resume_is_exact(prepared: Path, tmp_path: Path):
    from pipeline.lab.train.trainer import Trainer

    quiet = lambda m: None  # noqa: E731
    kw = {"steps": 10, "batch": 4, "loss": {"heatmap_every": 2, "adv_start": 7}, "val_every": 0}
    straight = Trainer(_cfg(prepared, tmp_path / "a", **kw), log=quiet)
    straight.fit()
    first = Trainer(_cfg(prepared, tmp_path / "b", **kw), log=quiet)
    first.fit(max_steps=6)
    second = Trainer(_cfg(prepared, tmp_path / "b", **kw), log=quiet)
    second.load(tmp_path / "b" / "ckpt_last.pt")
    assert second.step == 6
    second.fit()
    assert second.step == 10 and second.samples == straight.samples
    for (name, a), b in zip(straight.G.state_dict().items(), second.G.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    for a, b in zip(straight.D.state_dict().values(), second.D.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_cli_errors_are_one_line(prepared: Path, tmp_path: Path, capsys):
    from pipeline.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    assert main(["lab", "train", "--config", str(bad)]) == 2
    assert "unknown train config key 'stepz'" in capsys.readouterr().err
    good = tmp_path / "ok.yaml"
    good.write_text(f"data: {tmp_path / 'nothing'}\nout: {tmp_path / 'r'}\nmodels: {MODELS}\n")
    assert main(["lab", "train", "--config", str(good)]) == 2
    assert "prepare" in capsys.readouterr().err
    ok = tmp_path / "ok2.yaml"
    ok.write_text(f"data: {prepared}\nout: {tmp_path / 'r'}\nmodels: {MODELS}\nthreads: 1\n")
    assert main(["lab", "train", "--config", str(ok), "--resume", str(tmp_path / "none.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_warm_start_grows_without_changing_the_function(tmp_path: Path):
    from pipeline.lab.train.warmstart import grow_into
    from pipeline.stages.enhance.generator import ProgressiveGenerator

    torch.manual_seed(0)
    small = ProgressiveGenerator((32, 24, 16, 8), (2, 1, 1, 1)).eval()
    for p in small.parameters():  # trained-looking weights, not the near-bicubic init
        p.data.add_(torch.randn_like(p) * 0.05)
    big = ProgressiveGenerator((48, 32, 16, 12), (3, 2, 1, 2)).eval()
    grown = grow_into(big, small.state_dict())
    assert "stages.0.blocks.2.conv2.weight" in grown and "from_rgb.16.weight" in grown
    assert big.num_params() > small.num_params()
    with torch.no_grad():
        for e in (16, 32, 64):
            x = torch.rand(2, 3, e, e) * 2 - 1
            assert torch.allclose(big(x), small(x), atol=1e-6), e
    with pytest.raises(ValueError, match="cannot grow"):  # shrinking would change the function
        grow_into(ProgressiveGenerator((16, 24, 16, 8), (2, 1, 1, 1)), small.state_dict())


def test_average_writes_the_weighted_mean_of_one_design_and_refuses_two(tmp_path: Path, capsys):
    from pipeline.cli import main
    from pipeline.stages.enhance.generator import ProgressiveGenerator, load_generator, save_generator, trained_steps

    torch.manual_seed(0)
    a, b = (ProgressiveGenerator((32, 24, 16, 8), (2, 1, 1, 1)).eval() for _ in range(2))
    for p in b.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    save_generator(a, tmp_path / "a.safetensors", {"name": "a", "steps": 900})
    save_generator(b, tmp_path / "b.safetensors", {"name": "b", "steps": 300})
    out = tmp_path / "mean.safetensors"
    args = ["lab", "average", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")]
    assert main([*args, "--weight", "0.25", "--out", str(out), "--name", "mean"]) == 0
    mean, meta = load_generator(out)
    ga, _ = load_generator(tmp_path / "a.safetensors")
    gb, _ = load_generator(tmp_path / "b.safetensors")
    sa, sb, sm = ga.state_dict(), gb.state_dict(), mean.state_dict()
    for k in sm:  # files hold fp16: the mean is exact up to that rounding
        assert torch.allclose(sm[k], 0.75 * sa[k] + 0.25 * sb[k], atol=2e-3), k
    assert meta["name"] == "mean" and [p["share"] for p in meta["averaged"]] == [0.75, 0.25]
    assert trained_steps(meta) == 300  # trained as much as the less trained of the two, for eval's checks
    save_generator(ProgressiveGenerator((32, 24, 16, 12), (2, 1, 1, 1)), tmp_path / "c.safetensors")
    assert main(["lab", "average", str(tmp_path / "a.safetensors"), str(tmp_path / "c.safetensors"),
                 "--out", str(out), "--name", "x"]) == 2
    assert "not one design" in capsys.readouterr().err
    # the network a path-grown one started from: grown into its design first, so the mean is taken as training began
    p32 = ProgressiveGenerator((32, 24, 16, 8), (2, 1, 1, 1), path32=[24, 2]).eval()
    for p in p32.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    save_generator(p32, tmp_path / "p32.safetensors")
    assert main(["lab", "average", str(tmp_path / "a.safetensors"), str(tmp_path / "p32.safetensors"),
                 "--out", str(out), "--name", "m32"]) == 0
    mean, meta = load_generator(out)
    g32, _ = load_generator(tmp_path / "p32.safetensors")
    assert meta["arch"]["path32"] == [24, 2]
    sm, s32 = mean.state_dict(), g32.state_dict()
    assert torch.allclose(sm["path32.stages.0.up.weight"], 0.5 * sa["stages.1.up.weight"] + 0.5 * s32["path32.stages.0.up.weight"],
                          atol=2e-3)
    assert torch.allclose(sm["path32.context.weight"], 0.5 * s32["path32.context.weight"], atol=2e-3)  # grown from zero


def test_64_px_entry_path_starts_as_the_shared_stage_and_trains_alone(prepared: Path, tmp_path: Path):
    from pipeline.core.errors import ConfigError
    from pipeline.lab.train.trainer import Trainer
    from pipeline.stages.enhance.generator import ProgressiveGenerator, load_generator, save_generator

    torch.manual_seed(2)
    small = ProgressiveGenerator((32, 24, 16, 8), (2, 1, 1, 1))
    for p in small.parameters():  # trained-looking weights
        p.data.add_(torch.randn_like(p) * 0.05)
    init = save_generator(small, tmp_path / "small.safetensors")
    small, _ = load_generator(init)
    model = {"channels": [32, 24, 16, 8], "blocks": [2, 1, 1, 1], "path64": [24, 2]}
    freeze = ["from_rgb.16", "from_rgb.32", "stages", "refine", "to_rgb"]
    cfg = _cfg(prepared, tmp_path / "run", init=str(init), model=model, freeze=freeze, entries=[64],
               entry_weights=[1.0], steps=6, grow={"to64": 0, "to128": 0, "fade": 1}, val_every=3)  # fmt: skip
    t = Trainer(cfg, log=lambda m: None)
    xs = {e: torch.rand(2, 3, e, e) * 2 - 1 for e in (16, 32, 64)}
    with torch.no_grad():
        for e, x in xs.items():  # grown from the shared stage: the same function at every entry
            assert torch.allclose(t.G.eval()(x), small(x), atol=1e-6), e
    frozen = {n: p.detach().clone() for n, p in t.G.named_parameters() if n.startswith(tuple(freeze))}
    res = t.fit()
    assert res["step"] == 6 and all(np.isfinite(res["history"]))
    for model in (t.G, t.G_ema):  # the trained weights and their moving average, which is exported
        assert [n for n, p in model.named_parameters() if n in frozen and not torch.equal(p, frozen[n])] == []
    g, meta = load_generator(res["export"])
    assert meta["arch"]["path64"] == [24, 2]
    with torch.no_grad():
        assert torch.equal(g(xs[16]), small(xs[16])) and torch.equal(g(xs[32]), small(xs[32]))
        assert not torch.allclose(g(xs[64]), small(xs[64]), atol=1e-4)
    with pytest.raises(ConfigError, match="freeze"):
        Trainer(_cfg(prepared, tmp_path / "r", freeze=["nothing.like.this"]), log=lambda m: None)


def test_32_px_entry_path_starts_as_the_shared_stages_and_trains_alone(prepared: Path, tmp_path: Path):
    from pipeline.lab.train.trainer import Trainer
    from pipeline.stages.enhance.generator import ProgressiveGenerator, load_generator, save_generator

    torch.manual_seed(3)
    small = ProgressiveGenerator((32, 24, 16, 8), (2, 1, 1, 1), path64=[20, 2])
    for p in small.parameters():  # trained-looking weights
        p.data.add_(torch.randn_like(p) * 0.05)
    init = save_generator(small, tmp_path / "small.safetensors")
    small, _ = load_generator(init)
    model = {"channels": [32, 24, 16, 8], "blocks": [2, 1, 1, 1], "path64": [20, 2], "path32": [24, 3]}
    freeze = ["from_rgb", "stages", "refine", "to_rgb", "path64"]
    cfg = _cfg(prepared, tmp_path / "run", init=str(init), model=model, freeze=freeze, entries=[32],
               entry_weights=[1.0], steps=6, grow={"to64": 0, "to128": 0, "fade": 1}, val_every=3)  # fmt: skip
    t = Trainer(cfg, log=lambda m: None)
    xs = {e: torch.rand(2, 3, e, e) * 2 - 1 for e in (16, 32, 64)}
    with torch.no_grad():
        for e, x in xs.items():  # copied from the shared stages, one block deeper: the same function everywhere
            assert torch.allclose(t.G.eval()(x), small(x), atol=1e-6), e
    frozen = {n: p.detach().clone() for n, p in t.G.named_parameters() if n.startswith(tuple(freeze))}
    res = t.fit()
    assert res["step"] == 6 and all(np.isfinite(res["history"]))
    for model in (t.G, t.G_ema):
        assert [n for n, p in model.named_parameters() if n in frozen and not torch.equal(p, frozen[n])] == []
    g, meta = load_generator(res["export"])
    assert meta["arch"]["path32"] == [24, 3] and meta["arch"]["path64"] == [20, 2]
    with torch.no_grad():
        assert torch.equal(g(xs[16]), small(xs[16])) and torch.equal(g(xs[64]), small(xs[64]))
        assert not torch.allclose(g(xs[32]), small(xs[32]), atol=1e-4)


def test_a_recipe_whose_ancestor_left_the_checkout_says_how_to_restore_it(prepared: Path, tmp_path: Path):
    from pipeline.core.errors import InputError
    from pipeline.lab.train.trainer import Trainer

    with pytest.raises(InputError, match=r"git checkout [0-9a-f]+ -- engines/pfsr_v7\.safetensors"):
        Trainer(_cfg(prepared, tmp_path / "r", init="engines/pfsr_v7.safetensors"), log=lambda m: None)


def test_fine_tune_from_weights_in_bf16(prepared: Path, tmp_path: Path):
    from pipeline.lab.train.trainer import Trainer
    from pipeline.stages.enhance.generator import ProgressiveGenerator, load_generator, save_generator

    torch.manual_seed(1)
    small = ProgressiveGenerator((32, 24, 16, 8), (2, 1, 1, 1))
    init = save_generator(small, tmp_path / "small.safetensors")
    small, _ = load_generator(init)  # fp16-rounded, as the trainer will see it
    cfg = _cfg(prepared, tmp_path / "run", init=str(init), precision="bf16", name="tiny_v2", steps=8,
               model={"channels": [40, 24, 16, 8], "blocks": [3, 1, 1, 1]}, grow={"to64": 0, "to128": 0, "fade": 1},
               val_every=0)  # fmt: skip
    t = Trainer(cfg, log=lambda m: None)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(t.G.eval()(x), small(x), atol=1e-6)  # starts as the init model
        with t.autocast():
            y = t.G(x)
        assert (y.float() - small(x)).abs().max() < 0.05  # bf16 forward stays close to fp32
    res = t.fit()
    assert res["step"] == 8 and all(np.isfinite(res["history"]))
    g, meta = load_generator(res["export"])
    assert meta["name"] == "tiny_v2" and meta["init"] == str(init) and meta["arch"]["channels"] == [40, 24, 16, 8]
    with pytest.raises(Exception, match="precision"):
        _cfg(prepared, tmp_path / "r2", precision="fp8")
    # through the colour anchor: trains, and a config it cannot train is refused
    cfg = _cfg(prepared, tmp_path / "anchored", init=str(init), anchor=True, steps=4,
               model={"channels": [40, 24, 16, 8], "blocks": [3, 1, 1, 1]},
               grow={"to64": 0, "to128": 0, "fade": 1}, val_every=2)
    assert all(np.isfinite(Trainer(cfg, log=lambda m: None).fit()["history"]))
    with pytest.raises(Exception, match="anchor"):
        _cfg(prepared, tmp_path / "r3", anchor=True)
