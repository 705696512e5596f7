"""Trainer for the progressive generator: progressive growth with fade-in, multi-entry batches,
L1 + facial attention + heatmap consistency + SSIM (+ a small late hinge GAN term), EMA weights,
checkpoint/resume, validation PSNR against bicubic, fixed seeds.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...core.errors import ConfigError, InputError
from ...core.models import find_model
from ...stages.enhance.anchor import anchor_torch
from ...stages.enhance.fusion import FusionGenerator, is_fusion, load_fusion, save_fusion
from ...stages.enhance.generator import ProgressiveGenerator, save_generator
from .config import GrowConfig, TrainConfig
from .data import FaceSet, SequenceSet, make_batch, make_fusion_batch, to_tensor
from .degrade import clean
from .discriminator import ProgressiveDiscriminator
from .losses import attention_loss, d_hinge, g_hinge, heatmap_loss, load_fan, ssim_loss

_LOG = logging.getLogger(__name__)


def _last_commit_with(path: str) -> str:
    """The last commit whose tree still holds `path` (the parent of the commit that removed it), or the git
    expression that finds it where git cannot be asked."""
    try:
        parent = subprocess.run(["git", "log", "-n", "1", "--format=%p", "HEAD", "--", path], capture_output=True,
                                text=True, check=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        parent = []
    return parent[0] if parent else f"$(git rev-list -n 1 HEAD -- {path})~1"


def build_generator(cfg: TrainConfig) -> ProgressiveGenerator | FusionGenerator:
    """The network a training config describes, at its initial weights (training and `export` both build it)."""
    arch = dataclasses.asdict(cfg.model)
    return FusionGenerator(**arch, hidden=cfg.fusion_hidden) if cfg.fusion else ProgressiveGenerator(**arch)


def out_size_at(step: int, grow: GrowConfig) -> tuple[int, float]:
    """(output size, fade-in alpha) of the progressive schedule at a step."""
    if step >= grow.to128:
        return 128, min(1.0, (step - grow.to128) / max(grow.fade, 1))
    if step >= grow.to64:
        return 64, min(1.0, (step - grow.to64) / max(grow.fade, 1))
    return 32, 1.0


def pick_entry(rng: np.random.Generator, out: int, entries: list[int], weights: list[float]) -> int:
    allowed = [(e, w) for e, w in zip(entries, weights) if e < out]
    if not allowed:
        return min(entries)
    es, ws = zip(*allowed)
    p = np.array(ws, dtype=np.float64)
    return int(es[rng.choice(len(es), p=p / p.sum())])


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR (RGB, 0–255) of each image of a batch in [-1,1], after rounding to uint8 like a saved image."""
    a8 = ((a.clamp(-1, 1) + 1) * 127.5).round()
    b8 = ((b.clamp(-1, 1) + 1) * 127.5).round()
    mse = ((a8 - b8) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


class Trainer:
    """Progressive training of one generator from a `TrainConfig`; `fit` runs it, `load` resumes it."""

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = _LOG.info) -> None:
        self.cfg = cfg
        self.log_fn = log
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        dev = cfg.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device: cuda requested but no CUDA device is available")
        self.device = torch.device(dev)
        if self.device.type == "cpu" and cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.train_set = FaceSet(cfg.data, "train", limit=cfg.limit)
        self.video_set = SequenceSet(cfg.video, limit=cfg.limit) if cfg.video else None
        try:
            self.val_set: FaceSet | None = FaceSet(cfg.data, "val", limit=cfg.val_faces)
        except InputError:
            self.val_set = None
        self.G = build_generator(cfg)
        if cfg.init:
            self._init_from(cfg.init)
        self.G = self.G.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        for p in self.G_ema.parameters():
            p.requires_grad_(False)
        self.D = ProgressiveDiscriminator().to(self.device)
        self.opt_g = torch.optim.Adam(self._trainable(), lr=cfg.lr, betas=(0.9, 0.99))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
        self.fan = None
        if cfg.loss.heatmap > 0:
            self.fan = load_fan(find_model("fan68_compressed.pth", cfg.models or None)).to(self.device)
        self.step = 0
        self.samples = 0
        self.train_seconds = 0.0

    def _init_from(self, path: str) -> None:
        """Start from trained weights: a fusion file as it is; a single-frame file grown into the trunk."""
        from ...stages.enhance.generator import load_generator
        from .warmstart import grow_into

        if not Path(path).is_file() and Path(path).parts[:1] == ("engines",):
            raise InputError(f"init weights not found: {path}; the shipped generator's ancestors are in the "
                             f"repository's history: git checkout {_last_commit_with(path)} -- {path}")
        if isinstance(self.G, FusionGenerator) and is_fusion(path):
            self.G.load_state_dict(load_fusion(path)[0].state_dict())
            self.log_fn(f"initialised from fusion weights {path}")
            return
        small, meta = load_generator(path)
        grown = grow_into(self.G.base if isinstance(self.G, FusionGenerator) else self.G, small.state_dict())
        self.log_fn(f"initialised from {path} ({meta.get('arch')}); {len(grown)} tensors grown to "
                    f"{dataclasses.asdict(self.cfg.model)}")

    def _trainable(self) -> list[torch.nn.Parameter]:
        """G's parameters less those under `freeze`: a new part learns while what `init` gave stays exact."""
        if not self.cfg.freeze:
            return list(self.G.parameters())
        frozen = {n for n, _ in self.G.named_parameters() if n.startswith(tuple(self.cfg.freeze))}
        if not frozen:
            raise ConfigError(f"freeze: no generator parameter starts with any of {self.cfg.freeze}")
        for n, p in self.G.named_parameters():
            p.requires_grad_(n not in frozen)
        train = [p for p in self.G.parameters() if p.requires_grad]
        self.log_fn(f"frozen: {sum(p.numel() for p in self.G.parameters() if not p.requires_grad):,} parameters "
                    f"({len(frozen)} tensors); training {sum(p.numel() for p in train):,}")
        return train

    def autocast(self) -> Any:
        """bf16 autocast when asked for (about 1.6× faster training on an AVX512-BF16 CPU), else a no-op."""
        on = self.cfg.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=on)

    # ------------------------------------------------------------------ bookkeeping
    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        self.log_fn(line)
        with open(self.out / "train.log", "a") as f:
            f.write(line + "\n")

    def metrics(self, rec: dict[str, Any]) -> None:
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    def lr_at(self, step: int) -> float:
        c = self.cfg
        t = min(step / max(c.steps, 1), 1.0)
        return c.lr_final + 0.5 * (c.lr - c.lr_final) * (1 + math.cos(math.pi * t))

    def save(self, path: Path | None = None) -> Path:
        path = path or self.out / "ckpt_last.pt"
        state = {
            "step": self.step,
            "samples": self.samples,
            "train_seconds": self.train_seconds,
            "G": self.G.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "config": json.dumps(self.cfg.to_dict()),
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    def load(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"checkpoint not found: {path}")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:
            raise InputError(f"cannot read checkpoint {path}: {str(e).splitlines()[0]}") from None
        saved = json.loads(state["config"])
        model = dataclasses.asdict(self.cfg.model)
        if saved["model"] != model:
            raise ConfigError(f"checkpoint {path} has model {saved['model']}, config asks for {model}")
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step = int(state["step"])
        self.samples = int(state["samples"])
        self.train_seconds = float(state["train_seconds"])
        self.log(f"resumed from {path} at step {self.step}")

    def export(self, path: Path | None = None) -> Path:
        path = path or self.out / "generator.safetensors"
        meta = {
            "name": self.cfg.name,
            "init": self.cfg.init or None,
            "steps": self.step,
            "samples": self.samples,
            "train_seconds": round(self.train_seconds),
            "trained_on": f"CelebA test-partition crops, {len(self.train_set)} train faces (../shared/data/faces/train)"
            + (f"; {len(self.video_set)} camera-like video frames ({self.cfg.video}, "
               f"share {self.cfg.video_shares})" if self.video_set is not None else ""),
            "device": str(self.device),
            "ema": self.cfg.ema,
            "seed": self.cfg.seed,
        }
        if isinstance(self.G_ema, FusionGenerator):
            return save_fusion(self.G_ema, path, {**meta, "fusion_frames": self.cfg.fusion})
        return save_generator(self.G_ema, path, meta)

    # ------------------------------------------------------------------ steps
    def train_step(self) -> dict[str, float]:
        c = self.cfg
        step = self.step
        out, alpha = out_size_at(step, c.grow)
        rng = np.random.default_rng([c.seed, step, 7])
        entry = pick_entry(rng, out, c.entries, c.entry_weights)
        video_p = c.video_share(entry)
        valid = None
        if c.fusion:
            lr_img, valid, hr, att = make_fusion_batch(self.train_set, c.seed, step, c.batch, entry, c.fusion,
                                                       self.video_set, video_p, c.degrade, c.degrade_p, c.p_centred)
            valid = valid.to(self.device)
        else:
            lr_img, hr, att = make_batch(self.train_set, c.seed, step, c.batch, entry, c.degrade, c.degrade_p,
                                         self.video_set, video_p)
        lr_img, hr, att = lr_img.to(self.device), hr.to(self.device), att.to(self.device)
        for g in self.opt_g.param_groups:
            g["lr"] = self.lr_at(step)
        for g in self.opt_d.param_groups:
            g["lr"] = self.lr_at(step)
        target = hr if out == 128 else F.interpolate(hr, size=(out, out), mode="area")
        self.G.train()
        with self.autocast():  # the generator only: SSIM's variances and the FAN need fp32
            sr = (self.G(lr_img, valid, out_size=out) if valid is not None
                  else self.G(lr_img, out_size=out, alpha=alpha)).float()
        if c.anchor:
            sr = anchor_torch(sr, lr_img)
        losses, d_loss = self._losses(sr, target, att, out, step)
        total = sum(losses.values())
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        with torch.no_grad():
            d = c.ema if step > 200 else 0.0  # EMA warms up after the first steps
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
                if p.requires_grad:  # a frozen parameter stays exactly as `init` gave it, not within rounding
                    pe.mul_(d).add_(p.detach(), alpha=1 - d)
            for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
                be.copy_(b)
        self.step += 1
        self.samples += sr.shape[0]
        rec = {k: float(v.detach()) for k, v in losses.items()}
        rec.update(total=float(total.detach()), out=out, alpha=alpha, entry=entry)
        if d_loss is not None:
            rec["d"] = float(d_loss.detach())
        return rec

    def _losses(
        self, sr: torch.Tensor, target: torch.Tensor, att: torch.Tensor, out: int, step: int
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Generator losses and discriminator loss (None while the GAN term is off) of one batch's output."""
        lc = self.cfg.loss
        d_loss = None
        losses: dict[str, torch.Tensor] = {}
        losses["l1"] = (sr - target).abs().mean() * lc.l1
        if lc.mse > 0:
            losses["mse"] = (sr - target).square().mean() * lc.mse
        if lc.attention > 0:
            losses["att"] = attention_loss(sr, target, att) * lc.attention
        if lc.ssim > 0 and out >= 64:
            losses["ssim"] = ssim_loss(sr, target) * lc.ssim
        if self.fan is not None and out == 128 and lc.heatmap > 0 and step % max(lc.heatmap_every, 1) == 0:
            n = max(1, min(lc.heatmap_batch, sr.shape[0]))
            losses["hm"] = heatmap_loss(self.fan, sr[:n], target[:n]) * lc.heatmap
        use_adv = lc.adv > 0 and out == 128 and step >= lc.adv_start
        if use_adv:  # on a few faces of the batch: the discriminator would otherwise double a CPU step
            n = max(1, min(lc.adv_batch, sr.shape[0]))
            self.D.train()
            d_loss = d_hinge(self.D(target[:n]), self.D(sr[:n].detach()))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            for p in self.D.parameters():
                p.requires_grad_(False)
            losses["adv"] = g_hinge(self.D(sr[:n])) * lc.adv
            for p in self.D.parameters():
                p.requires_grad_(True)
        return losses, d_loss

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR of the EMA model vs bicubic on the first val faces, clean area-downscaled input, per entry."""
        if self.val_set is None:
            return {}
        out, _ = out_size_at(self.step, self.cfg.grow)
        res: dict[str, float] = {}
        hr_all = to_tensor(self.val_set.images).to(self.device)
        target = hr_all if out == 128 else F.interpolate(hr_all, size=(out, out), mode="area")
        for e in self.cfg.entries:
            if e >= out:
                continue
            lr = to_tensor(np.stack([clean(im, e) for im in self.val_set.images])).to(self.device)
            single = self.G_ema.base if isinstance(self.G_ema, FusionGenerator) else self.G_ema  # stills: K = 1
            sr = torch.cat([single(lr[i : i + 32], out_size=out) for i in range(0, len(lr), 32)])
            if self.cfg.anchor:
                sr = anchor_torch(sr, lr)
            bic = F.interpolate(lr, size=(out, out), mode="bicubic", align_corners=False)
            res[f"psnr{e}"] = float(psnr_per_image(sr, target).mean())
            res[f"bicubic{e}"] = float(psnr_per_image(bic, target).mean())
        return res

    def fit(self, max_steps: int | None = None) -> dict[str, Any]:
        c = self.cfg
        end = min(c.steps, max_steps if max_steps is not None else c.steps)
        deadline = time.time() + c.max_minutes * 60 if c.max_minutes else None
        window: list[dict[str, float]] = []
        t_last, n_last = time.time(), self.samples
        self.log(
            f"training {self.G.num_params() / 1e6:.3f} M params from step {self.step} to {end} on {self.device} "
            f"({len(self.train_set)} train faces, {len(self.video_set) if self.video_set else 0} video frames, batch {c.batch}, threads {torch.get_num_threads()})"
        )
        history = []
        while self.step < end:
            t0 = time.time()
            rec = self.train_step()
            self.train_seconds += time.time() - t0
            window.append(rec)
            history.append(rec["total"])
            if self.step % 50 == 0 or self.step == end:
                keys = sorted({k for r in window for k in r if k not in ("out", "alpha", "entry")})
                avg = {k: float(np.mean([r[k] for r in window if k in r])) for k in keys}
                sps = (self.samples - n_last) / max(time.time() - t_last, 1e-6)
                self.log(
                    f"step {self.step} out {rec['out']} alpha {rec['alpha']:.2f} lr {self.lr_at(self.step):.2e} "
                    + " ".join(f"{k} {v:.4f}" for k, v in avg.items())
                    + f" | {sps:.1f} samples/s"
                )
                self.metrics({"step": self.step, "samples_per_s": sps, **avg})
                window, t_last, n_last = [], time.time(), self.samples
            if c.val_every and self.step % c.val_every == 0:
                v = self.validate()
                if v:
                    self.log("val " + " ".join(f"{k} {x:.2f}" for k, x in v.items()))
                    self.metrics({"step": self.step, "val": v})
            stop = deadline is not None and time.time() > deadline
            if self.step % c.ckpt_every == 0 or self.step == end or stop:
                self.save()
                self.export()
            if stop:
                self.log(f"max_minutes reached at step {self.step}")
                break
        self.save()
        path = self.export()
        self.log(f"done: step {self.step}, {self.samples} samples, exported {path}")
        return {"step": self.step, "samples": self.samples, "history": history, "export": str(path)}
