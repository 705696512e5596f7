"""The PFSR generator's architecture (Kim et al., BMVC 2019) at its published size, for cost comparisons.

Only the shapes matter here: `enhance-faces lab gpu-run` times it with random weights beside the shipped generator to
state how much cheaper ours is per face on the same GPU. 16 px in, 128 px out: a 512-wide 16 px stage, then
three ×2 steps (transposed 4×4 convolutions) each with one residual block (conv-BN-ReLU ×2), widths
512 → 256 → 128 → 64, and a 1×1 to-RGB head. 8.97 M parameters, 10.5 GFLOP per face (`flops`).
Never loaded with trained weights; never part of the pipeline.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _up(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


class PFSRReference(nn.Module):
    """(B,3,16,16) → (B,3,128,128)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 512, 3, padding=1), nn.BatchNorm2d(512), nn.ReLU(),
                                  _Res(512), *_up(512, 256), _Res(256), *_up(256, 128), _Res(128), *_up(128, 64),
                                  nn.Conv2d(64, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def flops(self, entry: int = 16) -> float:
        """Forward FLOPs (2 × multiply-adds of convolutions and transposed convolutions) for one face."""
        macs = 0

        def hook(mod: nn.Module, inp, out: torch.Tensor) -> None:
            nonlocal macs
            if isinstance(mod, nn.ConvTranspose2d):  # every input pixel meets every kernel tap
                macs += inp[0][0].numel() * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1]
            else:
                macs += out[0].numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]

        hs = [m.register_forward_hook(hook) for m in self.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        try:
            with torch.no_grad():
                self.eval()(torch.zeros(1, 3, entry, entry))
        finally:
            for h in hs:
                h.remove()
        return 2.0 * macs
