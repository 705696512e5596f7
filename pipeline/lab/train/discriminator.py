"""A small progressive discriminator (hinge loss): enters at the image size (32, 64 or 128)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


class ProgressiveDiscriminator(nn.Module):
    def __init__(self, ch: int = 16) -> None:
        super().__init__()
        c = {128: ch, 64: ch * 2, 32: ch * 4, 16: ch * 4}
        self.from_rgb = nn.ModuleDict({str(r): spectral_norm(nn.Conv2d(3, c[r], 1)) for r in (128, 64, 32)})
        self.down = nn.ModuleDict(
            {str(r): nn.Sequential(spectral_norm(nn.Conv2d(c[r], c[r], 3, padding=1)), nn.LeakyReLU(0.2),
                                   spectral_norm(nn.Conv2d(c[r], c[r // 2], 4, stride=2, padding=1)), nn.LeakyReLU(0.2))
             for r in (128, 64, 32)})  # fmt: skip
        self.head = nn.Sequential(spectral_norm(nn.Conv2d(c[16], c[16], 3, padding=1)), nn.LeakyReLU(0.2),
                                  nn.Flatten(), spectral_norm(nn.Linear(c[16] * 16 * 16 // 16, 1)))  # fmt: skip
        self.pool = nn.AvgPool2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = x.shape[-1]
        h = F.leaky_relu(self.from_rgb[str(r)](x), 0.2)
        while r > 16:
            h = self.down[str(r)](h)
            r //= 2
        h = self.pool(self.head[:2](h))  # (B, C, 4, 4)
        return self.head[2:](h)
