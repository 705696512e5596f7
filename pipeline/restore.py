"""Restore: win back part of what the camera's codec took from a face before the generator sees it.

A 20 px face in H.264 at CRF 26 is 2–4 dB further from the truth than the same camera without the codec
(`probe-track`, engines/MODEL_CARD.md), and the generator, trained on coded inputs, adds about as much over a
resize with the codec as without it. A linear filter over each camera pixel's 9×9 neighbourhood (all three
channels in, each channel out), fitted by least squares from coded frames to the frames the same camera
would have delivered without codec, sensor noise or optics blur, wins some of it back. It is fitted on the
training people only (`run.py fit-restore`, `train/restore_fit.py`; camera renderings drawn as the training cache draws them: face
14–44 px, H.264 or H.265 at CRF 20–34, random GOP, blur, noise) and shipped as `engines/restore_v1.safetensors`.

It changes only what the generator sees (`Face.restored`, and the colour anchor that holds the output to
it). The "original" the product shows beside an enhanced face stays the camera's own pixels (`Face.lr`,
`Face.crop`), and so does the bicubic baseline every evaluation scores against.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, ModelNotFound
from .geometry import CROP
from .models import ENGINES

RADIUS = 4  # the filter sees (2·RADIUS+1)² camera pixels around each one
MARGIN = RADIUS + 4  # camera pixels kept around a crop's footprint, so the filter's border never reaches the cut
RIDGE = 10.0  # least-squares ridge weight (on sums over millions of pixels: a guard, not a prior)
WEIGHTS = ENGINES / "restore_v1.safetensors"


def footprint(m: np.ndarray, shape: tuple[int, ...], margin: int = MARGIN) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1: the source pixels a crop through `m` (source → 128) samples, plus `margin`, in the image."""
    inverse = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0], [CROP, 0], [0, CROP], [CROP, CROP]], np.float64) @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - margin, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + margin + 1, (shape[1], shape[0]))
    return int(x0), int(y0), int(max(x1, x0 + 1)), int(max(y1, y0 + 1))


def shifted(m: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """`m` for a sub-image whose top-left pixel is source (x0, y0)."""
    out = np.array(m, np.float64, copy=True)
    out[:, 2] += out[:, :2] @ np.array([x0, y0], np.float64)
    return out


class Restorer:
    """The fitted filter, applied to the camera pixels under a face's crop (`region`)."""

    def __init__(self, path: str | Path = WEIGHTS) -> None:
        from safetensors.numpy import load_file

        path = Path(path)
        if not path.is_file():
            raise ModelNotFound(f"restoration filter not found: {path} (align.restore: false turns it off)")
        t = load_file(str(path))
        self.kernel, self.bias = t["kernel"].astype(np.float32), t["bias"].astype(np.float32)  # (3,3,k,k), (3,)
        self.path = path

    @classmethod
    def from_fit(cls, kernel: np.ndarray, bias: np.ndarray) -> "Restorer":
        """A filter straight from `LeastSquares.solve` (probes and tests; the product loads the shipped file)."""
        r = cls.__new__(cls)
        r.kernel, r.bias, r.path = np.ascontiguousarray(kernel, np.float32), np.ascontiguousarray(bias, np.float32), None
        return r

    def save(self, path: Path, meta: dict[str, str]) -> None:
        """Write the filter as safetensors (no pickle), with how it was made in the metadata."""
        from safetensors.numpy import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"kernel": self.kernel, "bias": self.bias}, str(path), metadata=meta)

    def filter(self, image: np.ndarray) -> np.ndarray:
        """The whole of `image` (BGR uint8) restored (borders reflected)."""
        x = image.astype(np.float32)
        out = np.empty_like(x)
        for c in range(3):
            acc = np.full(x.shape[:2], self.bias[c], np.float32)
            for k in range(3):
                acc += cv2.filter2D(x[..., k], cv2.CV_32F, self.kernel[c, k], borderType=cv2.BORDER_REFLECT_101)
            out[..., c] = acc
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def region(self, image: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The restored pixels under a crop through `m` (only its footprint is filtered) and the matrix for them:
        `align.warp(*region, size)` is the generator's input."""
        x0, y0, x1, y1 = footprint(m, image.shape)
        return self.filter(image[y0:y1, x0:x1]), shifted(m, x0, y0)


def neighbourhoods(img: np.ndarray, r: int = RADIUS) -> np.ndarray:
    """Every pixel's (2r+1)² neighbourhood over the three channels (reflected at the border, as `filter`), plus a
    constant: (H·W, 3(2r+1)²+1), ordered channel, row, column."""
    p = np.pad(img.astype(np.float32), ((r, r), (r, r), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    rows = np.lib.stride_tricks.sliding_window_view(p, (2 * r + 1, 2 * r + 1), axis=(0, 1)).reshape(h * w, -1)
    return np.hstack([rows, np.ones((h * w, 1), np.float32)])


class LeastSquares:
    """Normal equations summed over (coded, clean) image pairs; `solve` gives the filter's kernel and bias."""

    def __init__(self, r: int = RADIUS) -> None:
        n = 3 * (2 * r + 1) ** 2 + 1
        self.r, self.xtx, self.xty, self.pixels = r, np.zeros((n, n)), np.zeros((n, 3)), 0

    def add(self, coded: np.ndarray, clean: np.ndarray) -> None:
        x = neighbourhoods(coded, self.r).astype(np.float64)
        self.xtx += x.T @ x
        self.xty += x.T @ clean.reshape(-1, 3).astype(np.float64)
        self.pixels += len(x)

    def solve(self, ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
        if not self.pixels:
            raise InputError("no pixels to fit the restoration filter on (no faces found in the rendered clips)")
        w = np.linalg.solve(self.xtx + ridge * np.eye(len(self.xtx)), self.xty)  # (n, 3)
        k = 2 * self.r + 1
        kernel = w[:-1].T.reshape(3, 3, k, k)  # out channel, in channel, row, column (a strided view)
        return np.ascontiguousarray(kernel, np.float32), w[-1].astype(np.float32)
