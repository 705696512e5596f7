"""SCRFD in torch: insightface's pre- and post-processing around the ONNX graph run by `TorchGraph`, batched.

The detector runs here where ONNX Runtime cannot use the GPU (the `onnxruntime` wheel has only the CPU
provider) but torch can, and where several frames should go through the network in one call (cameras
sharing a GPU). Each step is insightface's `SCRFD.detect` as the onnxruntime path runs it: the image resized
into the top-left of a zero canvas (cv2, bilinear), (RGB − 127.5) / 128, per stride the scores and the
distances to box sides and keypoints around anchor centres, the score threshold, then greedy NMS at IoU 0.4
with insightface's +1 pixel areas; so both runtimes find the same faces (tests/test_detect_track_align.py).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..core.errors import ModelNotFound
from ..core.onnx_torch import TorchGraph

STRIDES = (8, 16, 32)
MEAN, STD = 127.5, 128.0
NMS_IOU = 0.4


class TorchSCRFD:
    """`detect(image, input_size)` as insightface's SCRFD answers it, and `detect_batch` for many images.

    `path`: the ONNX file, or its `save_graph` form (.safetensors) where the `onnx` package is missing;
    `device`: a torch device. The network runs in fp32, as ONNX Runtime runs it.
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", threshold: float = 0.5) -> None:
        self.device = torch.device(device)
        self.net = TorchGraph.load(path).eval().to(self.device)
        if len(self.net.graph.outputs) != 3 * len(STRIDES):
            raise ModelNotFound(f"{path}: not an SCRFD detector with keypoints "
                                f"({len(self.net.graph.outputs)} outputs, 9 expected)")
        self.threshold = threshold
        self._centres: dict[tuple[int, int, int, int], torch.Tensor] = {}

    def detect(self, image: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Boxes with scores (n, 5) and keypoints (n, 5, 2) in `image`'s pixels, best first."""
        return self.detect_batch([image], input_size)[0]

    @torch.inference_mode()
    def detect_batch(self, images: list[np.ndarray],
                     input_size: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """`detect` for each BGR image, one network call for all (each resized into an `input_size` canvas)."""
        w, h = input_size
        canvas = np.zeros((len(images), h, w, 3), np.uint8)
        scales = []
        for i, img in enumerate(images):
            ih, iw = img.shape[:2]
            if ih / iw > h / w:
                nh, nw = h, int(h / (ih / iw))
            else:
                nw, nh = w, int(w * (ih / iw))
            canvas[i, :nh, :nw] = cv2.resize(img, (nw, nh))
            scales.append(nh / ih)
        x = torch.from_numpy(canvas).to(self.device, non_blocking=True)
        x = (x.flip(-1).permute(0, 3, 1, 2).float() - MEAN) / STD  # BGR → RGB, NCHW
        outs = self.net(x)
        rows = torch.cat([self._decode(outs, k, len(images), h, w) for k in range(len(STRIDES))], dim=1)
        keep = (rows[..., 0] >= self.threshold).nonzero()  # (image, row) pairs over the threshold
        picked = rows[keep[:, 0], keep[:, 1]].cpu().numpy()
        which = keep[:, 0].cpu().numpy()
        return [_finish(picked[which == i], scales[i]) for i in range(len(images))]

    def _decode(self, outs: list[torch.Tensor], k: int, n: int, h: int, w: int) -> torch.Tensor:
        """Stride k's rows for each image: (n, cells × anchors, 1 + 4 + 10) = score, box corners, keypoints."""
        s = STRIDES[k]
        gh, gw = h // s, w // s

        def per_image(t: torch.Tensor) -> torch.Tensor:  # the graph's (gh·gw·n·anchors, c) rows, image-major
            return t.reshape(gh * gw, n, -1).permute(1, 0, 2).reshape(n, -1, t.shape[-1])

        scores = per_image(outs[k])
        dist = per_image(outs[k + 3]) * s
        kps = per_image(outs[k + 6]) * s
        anchors = scores.shape[1] // (gh * gw)
        key = (gh, gw, s, anchors)
        if key not in self._centres:
            ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
            c = (torch.stack([xs, ys], -1).float() * s).reshape(-1, 1, 2).expand(-1, anchors, 2).reshape(-1, 2)
            self._centres[key] = c.to(self.device)
        c = self._centres[key]
        box = torch.cat([c - dist[..., :2], c + dist[..., 2:]], dim=-1)
        pts = (kps.reshape(n, -1, 5, 2) + c[None, :, None, :]).reshape(n, -1, 10)
        return torch.cat([scores, box, pts], dim=-1)


def _finish(rows: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """One image's rows over the threshold → insightface's (det, kpss): sorted by score, NMS, image pixels."""
    order = np.argsort(-rows[:, 0], kind="stable")
    rows = rows[order]
    det = np.hstack([rows[:, 1:5] / scale, rows[:, :1]]).astype(np.float32, copy=False)
    kpss = (rows[:, 5:] / scale).reshape(-1, 5, 2).astype(np.float32, copy=False)
    keep = nms(det)
    return det[keep], kpss[keep]


def nms(det: np.ndarray, iou: float = NMS_IOU) -> list[int]:
    """Greedy non-maximum suppression over score-sorted (n, 5) boxes, as insightface computes it."""
    x1, y1, x2, y2 = det[:, 0], det[:, 1], det[:, 2], det[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-det[:, 4], kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1, yy1 = np.maximum(x1[i], x1[order[1:]]), np.maximum(y1[i], y1[order[1:]])
        xx2, yy2 = np.minimum(x2[i], x2[order[1:]]), np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[1:][ovr <= iou]
    return keep
