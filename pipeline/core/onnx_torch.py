"""ONNX graphs run by torch: the detector and the embedder wherever torch runs, where ONNX Runtime has no GPU.

An ONNX file is a list of nodes over named tensors. `read_onnx` turns one into a `Graph` (the nodes as plain
data, the weights as tensors; it needs the `onnx` package), `save_graph`/`load_graph` keep that form in a
safetensors file (the nodes as JSON in its metadata: no pickle, and no `onnx` package where it is read), and
`TorchGraph` runs it: each node is the torch function of the same meaning, on the same weights, so its outputs are
ONNX Runtime's to float rounding (tests/test_detect_track_align.py and tests/test_devices.py compare them on
real photos).

Only the operators the SCRFD detectors and MobileFaceNet use are known (`OPS`); `TorchGraph` names any other
on load. Small integer initializers (shapes, axes, indices) and the shape arithmetic between them stay Python
values, so a graph's control flow never reads a tensor back from the device and it can be captured by CUDA
graphs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .errors import ModelNotFound

CONST_MAX = 16  # initializers up to this many elements, of integer type or empty, are Python values


@dataclass
class Graph:
    """An ONNX graph as data: `nodes` ({op, inputs, outputs, attrs}), `weights` (tensors), `consts` (small
    Python values), the graph's `inputs` and `outputs` by name."""

    nodes: list[dict[str, Any]]
    weights: dict[str, torch.Tensor]
    consts: dict[str, Any]
    inputs: list[str]
    outputs: list[str]


def read_onnx(path: str | Path) -> Graph:
    """The graph of an ONNX file (needs the `onnx` package, a dependency of insightface)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ModelNotFound(f"reading {path} needs the onnx package (pip install onnx), or a converted "
                            f".safetensors file") from None
    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError and others for a file that is not a model
        raise ModelNotFound(f"cannot read {path} as ONNX: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None
    g = model.graph
    weights: dict[str, torch.Tensor] = {}
    consts: dict[str, Any] = {}
    for init in g.initializer:
        a = numpy_helper.to_array(init)
        if a.size <= CONST_MAX and (a.dtype.kind in "iu" or a.size == 0):
            consts[init.name] = a.tolist()
        else:
            weights[init.name] = torch.from_numpy(a.copy())
    nodes = [{"op": n.op_type, "inputs": list(n.input), "outputs": list(n.output),
              "attrs": {a.name: _attr(onnx.helper.get_attribute_value(a)) for a in n.attribute}} for n in g.node]
    names = set(weights) | set(consts)
    return Graph(nodes, weights, consts, [i.name for i in g.input if i.name not in names],
                 [o.name for o in g.output])


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (list, tuple)):
        return [_attr(x) for x in v]
    if hasattr(v, "dims"):  # a TensorProto attribute (Constant nodes)
        from onnx import numpy_helper

        return numpy_helper.to_array(v).tolist()
    return v


def save_graph(graph: Graph, path: str | Path, source: str = "") -> None:
    """`graph` as a safetensors file: the weights as tensors, everything else as JSON metadata."""
    from safetensors.torch import save_file

    meta = {"nodes": graph.nodes, "consts": graph.consts, "inputs": graph.inputs, "outputs": graph.outputs,
            "names": list(graph.weights)}
    tensors = {f"w{i}": t.contiguous() for i, t in enumerate(graph.weights.values())}
    save_file(tensors, str(path), metadata={"onnx_graph": json.dumps(meta), "source": source})


def load_graph(path: str | Path) -> Graph:
    """An ONNX file, or a safetensors file `save_graph` wrote."""
    p = Path(path)
    if p.suffix != ".safetensors":
        return read_onnx(p)
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["onnx_graph"])
            weights = {n: f.get_tensor(f"w{i}") for i, n in enumerate(meta["names"])}
    except (KeyError, OSError, ValueError, json.JSONDecodeError) as e:
        raise ModelNotFound(f"{p} is not a converted ONNX graph ({type(e).__name__})") from None
    return Graph(meta["nodes"], weights, meta["consts"], meta["inputs"], meta["outputs"])


def _pads(attrs: dict, dims: int = 2) -> list[int]:
    pads = attrs.get("pads", [0] * 2 * dims)
    if pads[:dims] != pads[dims:]:
        raise NotImplementedError(f"asymmetric pads {pads}")
    return pads[:dims]


def _conv(x, w, b=None, *, attrs):
    return F.conv2d(x, w, b, stride=attrs.get("strides", 1), padding=_pads(attrs),
                    dilation=attrs.get("dilations", 1), groups=attrs.get("group", 1))


def _pool(kind):
    def run(x, *, attrs):
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise NotImplementedError(f"auto_pad {attrs['auto_pad']}")
        k, s, p, ceil = attrs["kernel_shape"], attrs.get("strides", 1), _pads(attrs), bool(attrs.get("ceil_mode", 0))
        if kind == "max":
            return F.max_pool2d(x, k, s, p, ceil_mode=ceil)
        return F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=bool(attrs.get("count_include_pad", 0)))
    return run


def _resize(x, roi=None, scales=None, sizes=None, *, attrs):
    mode = attrs.get("mode", "nearest")
    how = (mode, attrs.get("coordinate_transformation_mode", "half_pixel"),
           attrs.get("nearest_mode", "round_prefer_floor"))
    if how != ("nearest", "asymmetric", "floor"):  # what F.interpolate's "nearest" computes
        raise NotImplementedError(f"Resize {how}")
    if sizes:
        return F.interpolate(x, size=[int(v) for v in sizes[2:]], mode="nearest")
    return F.interpolate(x, scale_factor=[float(v) for v in scales[2:]], mode="nearest")


def _reshape(x, shape, *, attrs):
    shape = [x.shape[i] if v == 0 else int(v) for i, v in enumerate(shape)]  # ONNX: 0 copies that dimension
    return x.reshape(shape)


def _gather(x, index, *, attrs):
    if isinstance(x, (list, tuple)) and attrs.get("axis", 0) == 0:
        return [x[i] for i in index] if isinstance(index, list) else x[index]
    return torch.index_select(x, attrs.get("axis", 0), torch.as_tensor(index, device=x.device).reshape(-1))


def _unsqueeze(x, axes=None, *, attrs):
    axes = axes if axes is not None else attrs["axes"]
    if not isinstance(x, torch.Tensor):  # shape arithmetic: a scalar becomes a list
        return [x] if axes == [0] and not isinstance(x, list) else x
    for a in sorted(axes):
        x = x.unsqueeze(a)
    return x


def _slice(x, starts, ends, axes=None, steps=None, *, attrs):
    if not isinstance(x, (list, tuple)):
        raise NotImplementedError("Slice of a tensor")
    return list(x)[slice(starts[0], ends[0], (steps or [1])[0])]


def _concat(*xs, attrs):
    if all(not isinstance(x, torch.Tensor) for x in xs):
        return [v for x in xs for v in (x if isinstance(x, list) else [x])]
    return torch.cat(xs, dim=attrs["axis"])


OPS = {
    "Conv": _conv,
    "Relu": lambda x, *, attrs: F.relu(x),
    "PRelu": lambda x, slope, *, attrs: torch.where(x >= 0, x, x * slope),
    "Sigmoid": lambda x, *, attrs: torch.sigmoid(x),
    "Add": lambda a, b, *, attrs: a + b,
    "Mul": lambda a, b, *, attrs: a * b,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "Resize": _resize,
    "Transpose": lambda x, *, attrs: x.permute(attrs["perm"]),
    "Reshape": _reshape,
    "Shape": lambda x, *, attrs: list(x.shape),
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Slice": _slice,
    "Concat": _concat,
}


class TorchGraph(torch.nn.Module):
    """Runs a `Graph`: `forward(x)` returns the graph's outputs, in order, for input `x` (NCHW float)."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        unknown = sorted({n["op"] for n in graph.nodes} - set(OPS))
        if unknown:
            raise ModelNotFound(f"ONNX operators not supported by the torch runtime: {', '.join(unknown)}")
        if len(graph.inputs) != 1:
            raise ModelNotFound(f"the torch runtime runs graphs of one input, not {len(graph.inputs)}")
        self.graph = graph
        self._key = {name: f"w{i}" for i, name in enumerate(graph.weights)}
        for name, t in graph.weights.items():
            self.register_buffer(self._key[name], t.float() if t.is_floating_point() else t)

    @classmethod
    def load(cls, path: str | Path) -> TorchGraph:
        return cls(load_graph(path))

    @property
    def device(self) -> torch.device:
        """Where the weights are, so where inputs go."""
        return next(iter(self.buffers())).device

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        g = self.graph
        values: dict[str, Any] = {**g.consts, g.inputs[0]: x}
        for name, key in self._key.items():
            values[name] = getattr(self, key)
        for node in g.nodes:
            args = [values[i] if i else None for i in node["inputs"]]
            while args and args[-1] is None:  # trailing optional inputs left out
                args.pop()
            out = OPS[node["op"]](*args, attrs=node["attrs"])
            values[node["outputs"][0]] = out
        return [values[o] for o in g.outputs]
