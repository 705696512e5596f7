"""The one place pixels change form: uint8 BGR crops (or packed fused items) ↔ the generator's float tensors.

A single crop is uint8 BGR (B,e,e,3) ↔ RGB (B,3,e,e) in [-1,1]; a fused item is (B,K,e,e,4): K observations
of one track, BGR plus a presence plane ↔ (B,K,4,e,e). Torch ops, so the CUDA backends convert on the device
and move 4× fewer bytes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ...core.geometry import ENTRIES


def preprocess(lr: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 BGR (B,e,e,3) → RGB (B,3,e,e) in [-1,1]; a fused item (B,K,e,e,4) → (B,K,4,e,e) with the
    presence plane as 0/1."""
    if lr.dtype == torch.uint8 and lr.dim() == 5 and lr.shape[-1] == 4:
        x = lr.permute(0, 1, 4, 2, 3).to(dtype)
        return torch.cat([x[:, :, :3].flip(2).div(127.5).sub(1.0), (x[:, :, 3:] > 0).to(dtype)], 2)
    if lr.dtype != torch.uint8 or lr.dim() != 4 or lr.shape[-1] != 3:
        raise ValueError(f"expected uint8 (B,e,e,3) or (B,K,e,e,4), got {lr.dtype} {tuple(lr.shape)}")
    return lr.flip(-1).permute(0, 3, 1, 2).to(dtype).div_(127.5).sub_(1.0)


def postprocess(y: torch.Tensor) -> torch.Tensor:
    """RGB (B,3,128,128) in [-1,1] → uint8 BGR (B,128,128,3), contiguous."""
    y = y.float().clamp_(-1.0, 1.0).add_(1.0).mul_(127.5).round_()
    return y.to(torch.uint8).flip(1).permute(0, 2, 3, 1).contiguous()


class Uint8Net(torch.nn.Module):
    """uint8 BGR faces in, uint8 BGR 128 px faces out: `preprocess` → generator → `postprocess` as one module, so
    that a CUDA graph (and torch.compile) holds the whole path. The H200's kernel profile had 48% of the device
    time in elementwise work, part of it these conversions running as separate eager kernels."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = preprocess(lr, self.dtype)
        return postprocess(self.model(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x))


def mirror_entries(setting: bool | list[int]) -> tuple[int, ...]:
    """`enhance.mirror` as the entry sizes it mirrors: true is every entry, false none."""
    return tuple(ENTRIES) if setting is True else tuple(sorted(setting or ()))


def mirrored(run: Callable[[np.ndarray], np.ndarray], entries: tuple[int, ...] = ENTRIES
             ) -> Callable[[np.ndarray], np.ndarray]:
    """`run` (uint8 items → uint8 128 px faces) made mirror-symmetric (`enhance.mirror`) for items of `entries`:
    every such item goes through as seen and mirrored, in one batch, and the two faces (the second mirrored back)
    are averaged. Detail that one view invents and the other does not is halved; what the camera shows is in
    both. Twice the generator's work. Crops (B,e,e,3) and fused items (B,K,e,e,4) alike: the width axis, e, is
    the second to last; a batch holds one item shape."""

    def both(lr: np.ndarray) -> np.ndarray:
        if lr.shape[-2] not in entries:
            return run(lr)
        out = run(np.concatenate([lr, lr[..., ::-1, :]]))  # one new contiguous batch of 2N
        seen, flipped = out[: len(lr)].astype(np.float32), out[len(lr) :, :, ::-1].astype(np.float32)
        return np.rint((seen + flipped) * 0.5).astype(np.uint8)  # halves to even: no drift up or down

    return both


def item_shapes(entries: tuple[int, ...], fusion: int = 0) -> list[tuple[int, ...]]:
    """The uint8 item shapes a backend is built for: (e,e,3) crops, or with track fusion (1,e,e,4) and (K,e,e,4)."""
    if not fusion:
        return [(e, e, 3) for e in entries]
    return [(k, e, e, 4) for e in entries for k in sorted({1, fusion})]


def model_input(item: tuple[int, ...]) -> tuple[int, ...]:
    """The float model input of one item (what `preprocess` makes of it): (3,e,e) or (K,4,e,e)."""
    return (3, item[0], item[1]) if len(item) == 3 else (item[0], 4, item[1], item[2])


def _check(lr: np.ndarray) -> np.ndarray:
    from .fusion import MAX_FRAMES

    ok = isinstance(lr, np.ndarray) and lr.dtype == np.uint8 and (
        (lr.ndim == 4 and lr.shape[1:] in [(e, e, 3) for e in ENTRIES])
        or (lr.ndim == 5 and lr.shape[-1] == 4 and lr.shape[2:4] in [(e, e) for e in ENTRIES]
            and 1 <= lr.shape[1] <= MAX_FRAMES))
    if not ok:
        raise ValueError(f"expected uint8 (B,e,e,3) or (B,K,e,e,4) with e in {ENTRIES}, got "
                         f"{getattr(lr, 'dtype', type(lr))} {getattr(lr, 'shape', '')}")
    return np.ascontiguousarray(lr)
