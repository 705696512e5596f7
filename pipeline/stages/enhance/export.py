"""ONNX export of the generator: one file per entry size, dynamic batch axis, cached by weights hash.

The generator picks its stages from the input's spatial size with Python control flow, so one ONNX
graph cannot serve all three entries; each entry is exported separately with H/W fixed and only the
batch axis dynamic. The torch.export-based exporter (`dynamo=True`, needs `onnxscript`) is used: the
legacy TorchScript tracer turns `x.shape[-1]` into a tensor and breaks the generator's stage lookup.
Files go to the cache folder (`models.cache_dir`: $ENHANCE_CACHE or the user's cache), named by the
weights' sha256, so changed weights re-export and unchanged ones are reused; the opset, entry, weights
hash and torch version are in the metadata.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

from ...core.errors import EnhanceError
from ...core.geometry import CROP
from ...core.models import DISTRIBUTION, sha256
from ...core.models import cache_dir as default_cache

OPSET = 18
INPUT, OUTPUT = "lr", "sr"
MAX_BATCH = 4096


class ExportError(EnhanceError):
    """The generator could not be exported to ONNX (missing onnx/onnxscript, exporter failure)."""


def export_available() -> tuple[bool, str]:
    """Whether ONNX export can run here: onnx and onnxscript (torch's dynamo exporter) importable."""
    for mod in ("onnx", "onnxscript"):
        try:
            __import__(mod)
        except ImportError as e:
            return False, f"ONNX export needs `{mod}` ({e}); pip install '{DISTRIBUTION}[onnx]'"
    return True, "ok"


def input_shape(shape: int | tuple[int, ...]) -> tuple[int, ...]:
    """The model input of one item: an entry e means (3,e,e)."""
    return (3, shape, shape) if isinstance(shape, int) else tuple(shape)


def shape_key(shape: int | tuple[int, ...]) -> str:
    """`e32` for a single crop, `e32k8` for 8 fused observations: what names every cached artifact."""
    s = input_shape(shape)
    return f"e{s[-1]}" + (f"k{s[0]}" if len(s) == 4 else "")


def onnx_name(weights_sha: str, shape: int | tuple[int, ...], opset: int = OPSET) -> str:
    """Cache file name: the hash keys the weights, the shape the graph, the opset the exporter."""
    return f"generator_{weights_sha[:16]}_{shape_key(shape)}_op{opset}.onnx"


def export_onnx(model, shape: int | tuple[int, ...], path: str | Path, opset: int = OPSET,
                meta: dict[str, str] | None = None) -> Path:
    """Export `model` (a ProgressiveGenerator, or a PackedFusion for K frames) for one input shape to `path`
    (fp32, batch dynamic).

    Written to a temporary file and renamed, so a crash never leaves a half file the cache would reuse.
    """
    ok, why = export_available()
    if not ok:
        raise ExportError(why)
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    x = torch.zeros(2, *input_shape(shape))
    entry = x.shape[-1]
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    quiet = io.StringIO()
    level = logging.getLogger("torch").level
    logging.getLogger("torch").setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (x,), str(tmp), dynamo=True, opset_version=opset,
                              input_names=[INPUT], output_names=[OUTPUT], dynamic_shapes=({0: batch},),
                              external_data=False, verbose=False)
        proto = onnx.load(str(tmp))
        real_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
        layout = ("NCHW RGB float32 in [-1,1]" if x.dim() == 4 else
                  "N,K,C,H,W: K observations, RGB in [-1,1] + a presence plane (1 = real), target first")
        info = {"opset": str(real_opset), "entry": str(entry), "frames": str(x.shape[1]) if x.dim() == 5 else "1",
                "output": str(CROP), "torch": torch.__version__, "layout": layout, **(meta or {})}
        del proto.metadata_props[:]
        for k, v in info.items():
            proto.metadata_props.add(key=k, value=str(v))
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        tmp.replace(path)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"ONNX export of entry {entry} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    finally:
        logging.getLogger("torch").setLevel(level)
        tmp.unlink(missing_ok=True)
    return path


def cached_onnx(weights: str | Path, shape: int | tuple[int, ...], cache_dir: str | Path | None = None,
                opset: int = OPSET, model=None, weights_sha: str | None = None) -> Path:
    """The ONNX file for these weights and input shape, exported on first use and reused afterwards."""
    weights = Path(weights)
    digest = weights_sha or sha256(weights)
    path = Path(cache_dir or default_cache()) / onnx_name(digest, shape, opset)
    if path.is_file():
        return path
    if model is None:
        model = load_any(weights)
    return export_onnx(model, shape, path, opset, meta={"weights_sha256": digest, "weights": weights.name})


def load_any(weights: str | Path):
    """The exportable model of a weights file: the single-frame generator, or a fusion one packed."""
    from .fusion import PackedFusion, is_fusion, load_fusion
    from .generator import load_generator

    return PackedFusion(load_fusion(weights)[0]) if is_fusion(weights) else load_generator(weights)[0]


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata an exported file carries (opset, entry, weights_sha256, torch)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
