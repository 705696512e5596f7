"""The training recipe as typed sections, read by the same loader as the pipeline's config.

`configs/train*.yaml` overlay these defaults; an unknown key is an error naming it. A checkpoint stores
the recipe it ran (`TrainConfig.to_dict()`), so `export` and `--resume` read it back the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...core.config import _range, build, known, merge, parse_override, read_yaml
from ...core.errors import ConfigError
from ...core.geometry import ENTRIES
from .degrade import DegradeConfig


@dataclass
class ModelConfig:
    """Widths and residual blocks of the generator at 16 / 32 / 64 / 128 px."""

    channels: list[int] = field(default_factory=lambda: [128, 64, 32, 16])
    blocks: list[int] = field(default_factory=lambda: [8, 6, 2, 1])
    path64: list[int] = field(default_factory=list)  # [channels, blocks]: the 64 px entry's own stage (`Path64`); empty: shared
    path32: list[int] = field(default_factory=list)  # [channels, blocks]: the 32 px entry's own stages (`Path32`); empty: shared


@dataclass
class GrowConfig:
    """Progressive growth: the output grows 32 → 64 at `to64`, 64 → 128 at `to128`, each fading in."""

    to64: int = _range(0, None, default=300)
    to128: int = _range(0, None, default=800)
    fade: int = _range(0, None, default=300)


@dataclass
class LossConfig:
    l1: float = 1.0
    mse: float = 0.0  # mean squared error: pulls toward the conditional mean, what PSNR scores (and what invents least)
    attention: float = 1.0  # mean(FAN attention map ⊙ |SR − HR|)
    heatmap: float = 0.5  # MSE between FAN heatmaps of SR and HR
    heatmap_every: int = 4  # apply the heatmap term every N steps ...
    heatmap_batch: int = 4  # ... on this many faces of the batch (the FAN is costly on a CPU)
    ssim: float = 0.2  # 1 − SSIM
    adv: float = 0.002  # hinge GAN term
    adv_start: int = 4800  # step at which the discriminator starts
    adv_batch: int = 4  # faces of each batch the discriminator and the adversarial term see


@dataclass
class TrainConfig:
    name: str = "pfsr_custom"  # the generator's name in the exported file (the pipeline shows it)
    data: str = "data/faces128"  # output of `enhance-faces lab prepare`
    video: str | list[str] = ""  # `prepare-video` cache(s) (.npz): frames cut the way the pipeline cuts them
    video_p: float = _range(0.0, 1.0, default=0.0)  # share of each batch drawn from `video`
    entry_video_p: list[float] = field(default_factory=list)  # one `video_p` per entry of `entries` (empty: `video_p`)
    out: str = "runs/pfsr_lite"  # checkpoints, logs, exported safetensors
    models: str = ""  # FAN weights folder; empty: --models of the command, then $ENHANCE_MODELS
    seed: int = 1234
    threads: int = _range(0, 256, default=2)  # torch intra-op threads on CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    fusion: int = _range(0, 16, default=0)  # track fusion: up to this many observations per output (0 = single frame)
    fusion_hidden: int = _range(4, 256, default=32)  # width of the fusion's registration heads
    p_centred: float = _range(0.0, 1.0, default=0.5)  # fusion: share of centred windows (files) vs past-only (live)
    anchor: bool = False  # losses and val on the colour-anchored output (`enhance.anchor`), as the pipeline ships it
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes kept as `init` gave them (e.g. "stages.0")
    init: str = ""  # generator .safetensors to start from (may be narrower/shallower: grown function-preservingly)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast; weights, optimizer and losses stay fp32
    steps: int = _range(0, None, default=6000)
    batch: int = _range(1, None, default=16)
    lr: float = 3e-4
    lr_final: float = 2e-5  # cosine decay over `steps`
    ema: float = _range(0.0, 1.0, default=0.998)  # moving average of G's weights (used for val and export)
    grow: GrowConfig = field(default_factory=GrowConfig)
    entries: list[int] = field(default_factory=lambda: list(ENTRIES))  # picked per batch, below the output size
    entry_weights: list[float] = field(default_factory=lambda: [0.5, 0.25, 0.25])
    loss: LossConfig = field(default_factory=LossConfig)
    degrade_p: float = _range(0.0, 1.0, default=1.0)  # share of samples through the random chain
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    val_every: int = _range(0, None, default=500)
    val_faces: int = _range(0, None, default=64)
    ckpt_every: int = _range(1, None, default=200)
    max_minutes: float = _range(0.0, None, default=0.0)  # stop (checkpoint + export) after this long; 0 = no limit
    limit: int = _range(0, None, default=0)  # use only the first N prepared train faces (tests)

    @property
    def video_shares(self) -> float | list[float]:
        """The video share as the recipe gives it: one for every entry, or one per entry."""
        return self.entry_video_p or self.video_p

    def video_share(self, entry: int) -> float:
        """The share of a batch at `entry` drawn from `video`."""
        return self.entry_video_p[self.entries.index(entry)] if self.entry_video_p else self.video_p

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _checked(cfg: TrainConfig) -> TrainConfig:
    if any(e not in ENTRIES for e in cfg.entries) or len(cfg.entries) != len(cfg.entry_weights):
        raise ConfigError(f"entries must be a subset of {list(ENTRIES)} with one weight each")
    if cfg.entry_video_p and (len(cfg.entry_video_p) != len(cfg.entries)
                              or not all(0.0 <= p <= 1.0 for p in cfg.entry_video_p)):
        raise ConfigError("entry_video_p needs one share in [0, 1] per entry of `entries`")
    if cfg.anchor and (cfg.fusion or cfg.grow.to128):
        raise ConfigError("anchor trains a grown single-frame generator: set grow.to128: 0 and fusion: 0")
    if cfg.fusion and (cfg.grow.to128 or not cfg.video):
        raise ConfigError("fusion trains a grown generator on sequences: set grow.to128: 0 and a `video` cache")
    return cfg


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None,
                      over: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults → YAML file → `--set` overrides → `over` (what a command option or a test sets directly)."""
    data = read_yaml(path) if path is not None else {}
    for item in overrides or []:
        data = merge(data, parse_override(item))
    return _checked(build(TrainConfig, merge(data, over or {}), what="train config"))


def saved_train_config(saved: dict[str, Any]) -> TrainConfig:
    """The recipe a checkpoint stored (keys this version no longer knows are dropped)."""
    return _checked(build(TrainConfig, _plain(known(TrainConfig, saved)), what="train config"))


def _plain(d: Any) -> Any:
    """Tuples as lists, the way YAML and JSON give them to the loader."""
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return d
