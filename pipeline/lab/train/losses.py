"""Losses: L1, the PFSR facial-attention loss (compressed FAN heatmaps), heatmap consistency, SSIM, GAN terms.

The FAN is the compressed 68-landmark network from the PFSR authors (`fan68_compressed.pth`), used
frozen. It works best at 64×64, so 128 px faces are area-averaged to 64 before it sees them.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...core.errors import ModelNotFound


class CompressedFAN(nn.Module):
    """The compressed FAN: RGB [0,1] (B,3,H,W) → 68 landmark heatmaps (B,68,H,W)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 5, padding=2)
        self.layers = nn.Sequential(
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
            nn.Conv2d(128, 128, 3, padding=1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
            nn.Conv2d(128, 68, 3, padding=1), nn.LeakyReLU(0.2),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.conv(x))


def load_fan(path: str | Path) -> CompressedFAN:
    """Frozen FAN in eval mode; the file is a plain state_dict, loaded without pickle code execution."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotFound(f"FAN weights not found: {path}")
    fan = CompressedFAN()
    fan.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    fan.eval()
    for p in fan.parameters():
        p.requires_grad_(False)
    return fan


def to_fan_input(rgb_m11: torch.Tensor) -> torch.Tensor:
    """Generator-space RGB [-1,1] at 128 → FAN input RGB [0,1] at 64 (area average)."""
    x = (rgb_m11.clamp(-1, 1) + 1) * 0.5
    if x.shape[-1] != 64:
        x = F.interpolate(x, size=(64, 64), mode="area")
    return x


@torch.no_grad()
def attention_map(fan: CompressedFAN, rgb_m11: torch.Tensor) -> torch.Tensor:
    """PFSR attention map of HR faces: max over the 68 heatmaps, clamped to [0,1], at 64×64 → (B,64,64)."""
    return fan(to_fan_input(rgb_m11)).amax(dim=1).clamp(0, 1)


def attention_loss(sr: torch.Tensor, hr: torch.Tensor, att64: torch.Tensor) -> torch.Tensor:
    """mean(map ⊙ |SR − HR|) with the 64×64 attention map brought up to the image size."""
    att = F.interpolate(att64[:, None], size=sr.shape[-2:], mode="bilinear", align_corners=False)
    return (att * (sr - hr).abs()).mean()


def heatmap_loss(fan: CompressedFAN, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Heatmap consistency: MSE between FAN heatmaps of SR and of HR (gradient flows through SR only)."""
    with torch.no_grad():
        target = fan(to_fan_input(hr))
    return F.mse_loss(fan(to_fan_input(sr)), target)


def ssim_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    from pytorch_msssim import ssim

    return 1.0 - ssim((sr + 1) * 0.5, (hr + 1) * 0.5, data_range=1.0, size_average=True)


def d_hinge(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def g_hinge(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()
