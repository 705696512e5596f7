"""Track fusion: K aligned low-res observations of one face → the 128 px face of the first, in one file.

A track holds many slightly different samplings of the same face (sub-pixel motion, other noise and
compression); a single 16–32 px frame does not hold the detail that several together do (multi-frame
super-resolution, as burst photography does it). The network:

1. encodes every observation with the single-frame generator's entry layer (shared weights);
2. registers each neighbour to the target: a small convolutional head on (target, neighbour) features
   predicts a flow field (what misalignment the 5-point alignment left, expression changes) and a
   per-pixel weight logit (blurred, occluded, turned or badly detected frames learn to count less);
3. warps the neighbours' features by their flows and takes the softmax-weighted mean with the target's;
4. decodes the fused features with the single-frame generator's trunk, adding the residual to the
   *target's* bicubic upsampling, so the output keeps the target's expression and pose.

With one observation (K = 1, or every neighbour masked out) the weights are exactly (1, 0, …) and the
network is the single-frame generator: nothing gets worse on one-frame tracks.

`forward(x, valid)` takes x (B,K,3,e,e) RGB in [-1,1], index 0 the target, and valid (B,K) (1 = a real
observation; padding otherwise) and returns (B,3,128,128). Weights are fp16 safetensors with the
architecture in the metadata, like the single-frame generator's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...core.geometry import CROP
from ...core.models import ENGINES
from .generator import ProgressiveGenerator, read_weights

KIND = "fusion"
FUSION_NAME = "pfsr_fusion_v1"
FUSION_WEIGHTS = ENGINES / f"{FUSION_NAME}.safetensors"
MAX_FRAMES = 16  # the most observations one output fuses
MASKED = -1.0e4  # logit of a missing observation: exp() is 0 in fp16 too, and -inf never reaches an exporter


class Registration(nn.Module):
    """(target, neighbour) features → flow (2, in entry pixels) and a weight logit (1), per pixel."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * channels, hidden, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2), nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, 3, 3, padding=1),
        )  # fmt: skip
        nn.init.zeros_(self.net[-1].weight)  # start with no motion and equal logits
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, target: torch.Tensor, other: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(torch.cat([target, other], 1))
        return out[:, :2], out[:, 2:]


def warp_by_flow(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample feat (N,C,H,W) at pixel + flow (N,2,H,W, in pixels), bilinear, border-replicated."""
    n, _, h, w = feat.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=feat.device, dtype=feat.dtype),
                            torch.arange(w, device=feat.device, dtype=feat.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return F.grid_sample(feat, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border", align_corners=True)


class FusionGenerator(nn.Module):
    """(B,K,3,e,e) aligned observations of a track, target first, + validity (B,K) → (B,3,128,128)."""

    def __init__(self, channels: tuple[int, ...] | list[int] = (128, 64, 32, 16),
                 blocks: tuple[int, ...] | list[int] = (8, 6, 2, 1), hidden: int = 32,
                 target_prior: float = 2.0, path64: tuple[int, int] | list[int] | None = None,
                 path32: tuple[int, int] | list[int] | None = None) -> None:
        super().__init__()
        self.base = ProgressiveGenerator(channels, blocks, path64, path32)
        self.config = {**self.base.config, "hidden": int(hidden), "target_prior": float(target_prior), "kind": KIND}
        self.register = nn.ModuleDict({str(e): Registration(c, hidden) for e, c in self.base.entry_channels().items()})
        # the target's logit: a prior that its own pixels count most until neighbours prove useful
        self.target_logit = nn.Parameter(torch.tensor(float(target_prior)))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None, out_size: int = CROP) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(f"expected (B,K,3,e,e), got {tuple(x.shape)}")
        b, k, _, e, _ = x.shape
        target = x[:, 0]
        if k == 1:
            return self.base(target, out_size)
        feats = self.base.encode(x.flatten(0, 1)).unflatten(0, (b, k))  # (B,K,C,e,e)
        ft = feats[:, 0]
        others = feats[:, 1:].flatten(0, 1)
        flow, logit = self.register[str(e)](ft.repeat_interleave(k - 1, 0), others)
        warped = warp_by_flow(others, flow).unflatten(0, (b, k - 1))
        logits = torch.cat([self.target_logit.expand(b, 1, 1, e, e), logit.unflatten(0, (b, k - 1))], 1)
        if valid is not None:
            mask = valid.to(torch.bool).clone()
            mask[:, 0] = True  # the target is always there
            logits = logits.masked_fill(~mask[:, :, None, None, None], MASKED)
        w = torch.softmax(logits, dim=1)
        fused = w[:, 0] * ft + (w[:, 1:] * warped).sum(1)
        return self.base.decode(fused, target, out_size)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops(self, entry: int = 16, k: int = 8) -> float:
        """Forward FLOPs (2 × convolution multiply-adds) for one fused output from k observations."""
        macs = 0

        def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
            nonlocal macs
            macs += out.numel() * mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups

        hs = [m.register_forward_hook(hook) for m in self.modules() if isinstance(m, nn.Conv2d)]
        try:
            with torch.no_grad():
                self(torch.zeros(1, k, 3, entry, entry))
        finally:
            for h in hs:
                h.remove()
        return 2.0 * macs


class PackedFusion(nn.Module):
    """The fusion generator on one packed tensor (B,K,4,e,e): RGB in [-1,1] and a presence plane (1 = real).

    One input, so the batcher, ONNX export and TensorRT treat a fused item like a single-frame crop.
    """

    def __init__(self, fusion: FusionGenerator) -> None:
        super().__init__()
        self.fusion = fusion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fusion(x[:, :, :3], x[:, :, 3, 0, 0] > 0.5)


def pack(target: np.ndarray, others: list[np.ndarray], k: int) -> np.ndarray:
    """A fused item: (k,e,e,4) uint8, BGR + presence (255), target first, missing observations zero.

    With no others the item is (1,e,e,4): a one-frame track runs as the single-frame trunk."""
    n = 1 + min(len(others), k - 1) if others else 1
    item = np.zeros((n if n == 1 else k, *target.shape[:2], 4), np.uint8)
    for i, img in enumerate([target, *others[: n - 1]]):
        item[i, :, :, :3] = img
        item[i, :, :, 3] = 255
    return item


def save_fusion(model: FusionGenerator, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """fp16 safetensors; architecture and `meta` in the header (no pickle)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt", "arch": json.dumps(model.config),
                                            "meta": json.dumps(meta or {}, default=str)})
    return path


def load_fusion(path: str | Path) -> tuple[FusionGenerator, dict[str, Any]]:
    """Rebuild a FusionGenerator from its safetensors file alone; float32, eval mode."""
    from ...core.errors import ModelNotFound

    path = Path(path)
    arch, meta, state = read_weights(path, "fusion")
    if arch.get("kind") != KIND:
        raise ModelNotFound(f"{path} is not a fusion generator (kind {arch.get('kind')!r})")
    model = FusionGenerator(arch["channels"], arch["blocks"], arch["hidden"], arch["target_prior"], arch.get("path64"),
                            arch.get("path32"))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    return model, {**meta, "arch": arch, "path": str(path)}


def is_fusion(path: str | Path) -> bool:
    """Whether a weights file holds a fusion generator (by its header, without loading the tensors)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("arch", "{}")).get("kind") == KIND
    except Exception:
        return False
