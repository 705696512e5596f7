"""Start a (possibly wider and deeper) generator from trained weights without changing what it computes.

A CPU budget cannot afford to throw a trained model away to try a larger one. `grow_into` copies a smaller
generator's weights into a larger one so the larger one starts as exactly the smaller function:

- wider layers: old weights go in the leading slice; weights that *read* new channels are zero, so the new
  channels carry values that nothing uses yet (gradients then bring them in);
- deeper stages: added residual blocks get a zero second convolution, so each starts as the identity;
- a 64 px entry path of its own (`Path64`) starts as a copy of the shared 64 px stage, refine and head it
  replaces, with its context from the 32 px stage at zero; the 32 px entry's (`Path32`) likewise starts as
  a copy of the from-RGB layer, stages, refine and head a 32 px face passes, its context from the 16 px
  stage at zero.
"""

from __future__ import annotations

import torch

from ...stages.enhance.generator import ProgressiveGenerator


def grow_into(big: ProgressiveGenerator, small_state: dict[str, torch.Tensor]) -> list[str]:
    """Load `small_state` into `big` function-preservingly; returns the names of the parameters that grew.

    Everything is checked before anything is written, so a mismatch leaves `big` untouched.
    """
    state = big.state_dict()  # shares storage with big's parameters: writing here writes the model
    if big.path64 is not None and not any(k.startswith("path64.") for k in small_state):
        small_state = {**small_state, **_shared_as(small_state, _AS_PATH64)}
    if big.path32 is not None and not any(k.startswith("path32.") for k in small_state):
        small_state = {**small_state, **_shared_as(small_state, _AS_PATH32)}
    missing = sorted(set(small_state) - set(state))
    if missing:
        raise ValueError(f"weights have layers the model lacks: {missing[:3]}")
    for name, old in small_state.items():
        new = state[name]
        if old.dim() != new.dim() or any(o > n for o, n in zip(old.shape, new.shape)):
            raise ValueError(f"{name}: cannot grow {tuple(old.shape)} into {tuple(new.shape)}")
    grown = []
    with torch.no_grad():
        for name, new in state.items():
            old = small_state.get(name)
            if old is None:
                if name.endswith("conv2.weight") or name.endswith("conv2.bias"):
                    new.zero_()  # a new residual block starts as the identity
                grown.append(name)
            elif old.shape == new.shape:
                new.copy_(old)
            else:
                if new.dim() == 4:
                    new[:, old.shape[1] :] = 0  # nothing reads the new input channels yet
                new[tuple(slice(0, n) for n in old.shape)] = old
                grown.append(name)
    return grown


_AS_PATH64 = {"stages.2.": "path64.stage.", "refine.": "path64.refine.", "to_rgb.128.": "path64.to_rgb."}
_AS_PATH32 = {"from_rgb.32.": "path32.from_rgb.", "stages.1.": "path32.stages.0.", "stages.2.": "path32.stages.1.",
              "refine.": "path32.refine.", "to_rgb.128.": "path32.to_rgb."}


def _shared_as(state: dict[str, torch.Tensor], renames: dict[str, str]) -> dict[str, torch.Tensor]:
    """The shared layers' weights under the names of an entry's own path that starts as them."""
    return {new + k[len(old):]: v for k, v in state.items() for old, new in renames.items() if k.startswith(old)}
