"""The progressive face super-resolution generator (after Kim et al., PFSR, BMVC 2019), in one file.

Structure (PFSR's): 16 → 32 → 64 → 128, one residual stage per ×2, a to-RGB head per stage, and stages
grown during training with a fade-in between the previous stage's (upsampled) image and the new one.

What differs from PFSR:
- Multi-entry: a from-RGB layer per entry size (16, 32, 64). A 32 px crop enters at the 32 px stage and
  a 64 px crop at the 64 px stage, instead of every face being thrown down to 16 px first.
- Every to-RGB head predicts a residual over the bicubic upsampling of the input, so an untrained
  network starts at bicubic quality and compute goes into detail rather than into reproducing colour.
- Widths/blocks are far smaller than PFSR's (8.97 M params, 10.5 GFLOP/face), chosen so the network
  trains usefully on a CPU and enhances many faces per second at run time; see `flops()`. Capacity sits
  at the low resolutions (128 channels at 16 px, 16 at 128 px): that is where a 16 px face's structure
  is decided, and where a channel costs least.

`forward(x)` takes (B,3,e,e) RGB in [-1,1] with e in {16,32,64} and returns (B,3,128,128) in [-1,1].
Weights are fp16 safetensors; the architecture's hyper-parameters travel in the file's metadata, so
`load_generator(path)` rebuilds the model from the file alone, without pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...core.geometry import CROP, ENTRIES
from ...core.models import ENGINES

NAME = "pfsr_v21"  # pfsr_v20 with a deeper 64 px entry path, trained on that entry alone (engines/MODEL_CARD.md)
DEFAULT_WEIGHTS = ENGINES / f"{NAME}.safetensors"


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        nn.init.kaiming_normal_(self.conv1.weight, a=0.2)
        nn.init.kaiming_normal_(self.conv2.weight, a=0.2)
        self.conv2.weight.data.mul_(0.1)  # residual branches start small: stable without normalisation
        nn.init.zeros_(self.conv1.bias)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class Stage(nn.Module):
    """Residual blocks at resolution r (c_in channels), then ×2 by sub-pixel convolution to c_out channels."""

    def __init__(self, c_in: int, c_out: int, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ResBlock(c_in) for _ in range(blocks)])
        self.up = nn.Conv2d(c_in, c_out * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.shuffle(self.up(self.blocks(x))), 0.2)


class Path64(nn.Module):
    """The 64 px entry's own way to 128 px, used when the generator is built with `path64`.

    A face that enters at 64 px (one about 30 px tall in the camera) otherwise meets only the 64 px stage:
    a few 3×3 blocks that see about a quarter of the face, where a 16 or 32 px entry's face passes six to
    fourteen blocks that see all of it. Here the same face, shrunk to 32 px, also goes through the 32 px
    stage, and its 64 px features come in through `context` (zero at the start, so the path starts as the
    shared stage it was copied from). Its own stage, refine and head leave the 16/32 px entries untouched.
    """

    def __init__(self, c_trunk: int, c: int, c128: int, blocks: int, refine_blocks: int) -> None:
        super().__init__()
        self.context = nn.Conv2d(c_trunk, c, 1)
        nn.init.zeros_(self.context.weight)
        nn.init.zeros_(self.context.bias)
        self.stage = Stage(c, c128, blocks)
        self.refine = nn.Sequential(*[ResBlock(c128) for _ in range(refine_blocks)])
        self.to_rgb = nn.Conv2d(c128, 3, 3, padding=1)
        nn.init.normal_(self.to_rgb.weight, std=1e-3)
        nn.init.zeros_(self.to_rgb.bias)


class Path32(nn.Module):
    """The 32 px entry's own way to 128 px, used when the generator is built with `path32`.

    Faces about 17–27 px tall in the camera enter at 32 px. Training the shared 32 px stage for them moves
    the 16 px entry's faces and the 64 px entry's context too, so this path holds its own copies of what a
    32 px face passes: from-RGB, the 32 and 64 px stages, refine and head. The same face, shrunk to 16 px,
    also goes through the 16 px stage (the network's widest), whose view of the whole face comes in through
    `context` (zero at the start, so the path starts as the shared stages it was copied from).
    """

    def __init__(self, c_ctx: int, c: int, c64: int, c128: int, blocks: int, blocks64: int, refine_blocks: int) -> None:
        super().__init__()
        self.from_rgb = nn.Conv2d(3, c, 3, padding=1)
        self.context = nn.Conv2d(c_ctx, c, 1)
        nn.init.zeros_(self.context.weight)
        nn.init.zeros_(self.context.bias)
        self.stages = nn.ModuleList([Stage(c, c64, blocks), Stage(c64, c128, blocks64)])
        self.refine = nn.Sequential(*[ResBlock(c128) for _ in range(refine_blocks)])
        self.to_rgb = nn.Conv2d(c128, 3, 3, padding=1)
        nn.init.normal_(self.to_rgb.weight, std=1e-3)
        nn.init.zeros_(self.to_rgb.bias)


class ProgressiveGenerator(nn.Module):
    """Multi-entry progressive generator: (B,3,e,e), e in {16,32,64}, RGB [-1,1] → (B,3,128,128).

    `path64` = [channels, blocks] gives the 64 px entry its own stage with context from the 32 px stage
    (`Path64`); None or empty: every entry shares the 64 px stage, as pfsr_v2 … pfsr_v7 do. `path32` =
    [channels, blocks] likewise gives the 32 px entry its own 32 px stage (and copies of the later ones) with
    context from the 16 px stage (`Path32`); None or empty: the 32 px entry shares the 16 px entry's stages.
    """

    def __init__(
        self,
        channels: tuple[int, ...] | list[int] = (128, 64, 32, 16),
        blocks: tuple[int, ...] | list[int] = (8, 6, 2, 1),
        path64: tuple[int, int] | list[int] | None = None,
        path32: tuple[int, int] | list[int] | None = None,
    ) -> None:
        super().__init__()
        channels, blocks = [int(c) for c in channels], [int(b) for b in blocks]
        if len(channels) != 4 or len(blocks) != 4:
            raise ValueError("channels and blocks need 4 values: at 16, 32, 64 and 128 px")
        if path64 and len(path64) != 2:
            raise ValueError("path64 needs 2 values: the 64 px entry's channels and blocks")
        if path32 and len(path32) != 2:
            raise ValueError("path32 needs 2 values: the 32 px entry's channels and blocks")
        self.config: dict[str, Any] = {"channels": channels, "blocks": blocks}
        c16, c32, c64, c128 = channels
        self.path64: Path64 | None = None
        c_in64 = c64
        if path64:
            self.config["path64"] = [int(v) for v in path64]
            c_in64 = int(path64[0])
            self.path64 = Path64(c64, c_in64, c128, int(path64[1]), blocks[3])
        self.path32: Path32 | None = None
        if path32:
            self.config["path32"] = [int(v) for v in path32]
            self.path32 = Path32(c32, int(path32[0]), c64, c128, int(path32[1]), blocks[2], blocks[3])
        self.from_rgb = nn.ModuleDict({"16": nn.Conv2d(3, c16, 3, padding=1), "32": nn.Conv2d(3, c32, 3, padding=1),
                                       "64": nn.Conv2d(3, c_in64, 3, padding=1)})  # fmt: skip
        self.stages = nn.ModuleList([Stage(c16, c32, blocks[0]), Stage(c32, c64, blocks[1]), Stage(c64, c128, blocks[2])])
        self.refine = nn.Sequential(*[ResBlock(c128) for _ in range(blocks[3])])
        self.to_rgb = nn.ModuleDict({"32": nn.Conv2d(c32, 3, 3, padding=1), "64": nn.Conv2d(c64, 3, 3, padding=1),
                                     "128": nn.Conv2d(c128, 3, 3, padding=1)})  # fmt: skip
        for head in self.to_rgb.values():  # start as a pure bicubic upsampler
            nn.init.normal_(head.weight, std=1e-3)
            nn.init.zeros_(head.bias)

    @staticmethod
    def _up(x: torch.Tensor, size: int) -> torch.Tensor:
        if x.shape[-1] == size:
            return x
        return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)

    def forward(self, x: torch.Tensor, out_size: int = CROP, alpha: float = 1.0) -> torch.Tensor:
        """Enter at x's size, run the stages up to out_size (32/64/128, for progressive training).

        alpha < 1 fades the last stage in: alpha·(new stage image) + (1−alpha)·(previous image, upsampled).
        """
        return self.decode(self.encode(x), x, out_size, alpha)

    def entry_channels(self) -> dict[int, int]:
        """Channels of `encode`'s features per entry (track fusion registers and weighs these)."""
        first = {e: self.from_rgb[str(e)] for e in ENTRIES}
        if self.path32 is not None:
            first[32] = self.path32.from_rgb
        return {e: conv.out_channels for e, conv in first.items()}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The entry's features of a low-res face (B,3,e,e) → (B,C_e,e,e); track fusion combines these."""
        e = x.shape[-1]
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-2] != e or e not in ENTRIES:
            raise ValueError(f"expected (B,3,e,e) with e in {ENTRIES}, got {tuple(x.shape)}")
        if e == 32 and self.path32 is not None:  # the 16 px stage's view of the whole face, as context
            p32 = self.path32
            small = F.leaky_relu(self.from_rgb["16"](F.avg_pool2d(x, 2)), 0.2)
            return F.leaky_relu(p32.from_rgb(x), 0.2) + p32.context(self.stages[0](small))
        feat = F.leaky_relu(self.from_rgb[str(e)](x), 0.2)
        if e == 64 and self.path64 is not None:  # the 32 px stage's view of the whole face, as context
            small = F.leaky_relu(self.from_rgb["32"](F.avg_pool2d(x, 2)), 0.2)
            feat = feat + self.path64.context(self.stages[1](small))
        return feat

    def decode(self, feat: torch.Tensor, x: torch.Tensor, out_size: int = CROP, alpha: float = 1.0) -> torch.Tensor:
        """Entry features + the low-res face they came from (for the bicubic residual) → the face at out_size."""
        e = x.shape[-1]
        if out_size not in (32, 64, 128) or out_size <= e:
            raise ValueError(f"out_size must be 32, 64 or 128 and larger than the entry {e}, got {out_size}")
        if e == 64 and self.path64 is not None:  # out_size is 128, and there is no earlier image to fade from
            p = self.path64
            img = self._up(x, CROP) + p.to_rgb(p.refine(p.stage(feat)))
        elif e == 32 and self.path32 is not None:
            if out_size != CROP:
                raise ValueError(f"the 32 px entry's own path decodes to {CROP} px only, not {out_size}")
            p32 = self.path32
            img = self._up(x, CROP) + p32.to_rgb(p32.refine(p32.stages[1](p32.stages[0](feat))))
        else:
            img = self._through_stages(feat, x, out_size, alpha)
        return img.clamp(-1.0, 1.0) if not self.training else img

    def _through_stages(self, feat: torch.Tensor, x: torch.Tensor, out_size: int, alpha: float) -> torch.Tensor:
        """The shared stages from the entry's resolution up to out_size, fading the last one in by alpha."""
        e = x.shape[-1]
        prev_img = None
        res = e
        while res < out_size:
            stage = self.stages[{16: 0, 32: 1, 64: 2}[res]]
            if res * 2 == out_size and alpha < 1.0 and res > e:
                prev_img = self._up(x, res) + self.to_rgb[str(res)](feat)
            feat = stage(feat)
            res *= 2
        if res == CROP:
            feat = self.refine(feat)
        img = self._up(x, res) + self.to_rgb[str(res)](feat)
        if prev_img is not None:
            img = alpha * img + (1.0 - alpha) * self._up(prev_img, res)
        return img

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops(self, entry: int = 16) -> float:
        """Forward FLOPs (2 × multiply-adds of the convolutions; interpolation ignored) for one face."""
        macs = 0

        def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
            nonlocal macs
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            macs += out.numel() * k

        hs = [m.register_forward_hook(hook) for m in self.modules() if isinstance(m, nn.Conv2d)]
        try:
            with torch.no_grad():
                self(torch.zeros(1, 3, entry, entry))
        finally:
            for h in hs:
                h.remove()
        return 2.0 * macs


def save_generator(model: ProgressiveGenerator, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write fp16 safetensors; the architecture and `meta` go in the header metadata as JSON strings."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in model.state_dict().items()}
    info = {"name": NAME, **(meta or {})}
    metadata = {"format": "pt", "arch": json.dumps(model.config), "meta": json.dumps(info, default=str)}
    save_file(tensors, str(path), metadata=metadata)
    return path


def read_weights(path: Path, name: str = "generator") -> tuple[dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]:
    """(arch, meta, tensors) of a file written by `save_generator` or `fusion.save_fusion`; no pickle.
    ModelNotFound, naming the `name` weights, for a missing, corrupt or foreign file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ...core.errors import ModelNotFound

    if not path.is_file():
        raise ModelNotFound(f"{name} weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        arch = json.loads(header["arch"])
        meta = json.loads(header.get("meta", "{}"))
        state = load_file(str(path))
    except Exception as e:  # corrupt / foreign file
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelNotFound(f"cannot load {name} weights {path}: {why}") from None
    return arch, meta, state


def trained_steps(meta: dict[str, Any]) -> int:
    """Training steps behind a generator file's meta: its own, or for the mean of several (`lab average`)
    the fewest any of them had; 0 for an untrained network."""
    members = meta.get("averaged")
    if members:
        return min(trained_steps(m.get("meta", {})) for m in members)
    return int(meta.get("steps") or 0)


def load_generator(path: str | Path | None = None) -> tuple[ProgressiveGenerator, dict[str, Any]]:
    """Rebuild the generator from a safetensors file alone (no pickle); float32, eval mode."""
    path = Path(path) if path else DEFAULT_WEIGHTS
    arch, meta, state = read_weights(path)
    model = ProgressiveGenerator(**arch)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    meta = {**meta, "arch": arch, "path": str(path)}
    return model, meta
