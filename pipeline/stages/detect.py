"""Detect: SCRFD (ONNX Runtime through insightface, or torch) → Face records with boxes, 5 keypoints and scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from ..core.config import DetectConfig, stage_device
from ..core.devices import Choice, Device, pick_runtime
from ..core.errors import ModelNotFound
from ..core.models import find_model
from ..core.types import Face

# Face px at the detector's input below which the small-face pass takes over. On the crowd photo SCRFD-500M found,
# of the faces a 1.5x pass finds, 98-100% from 20 px at its input, 63-84% at 12-16 px, 7-40% under 12 px.
SMALL_AT_INPUT = 32.0
NATIVE_UP_TO = 1.25  # frames at most this much larger than detect.input_size: one pass at their own size, not two
DUPLICATE_IOU = 0.4  # a face the small-face pass found again, in the whole-frame pass
# Between full small-face passes: a window of 12x a followed face's size, at least 384 px. SCRFD needs the
# context: smaller windows lose faces the full pass finds (benchmarks/detection).
ROI_SPAN, ROI_MIN = 12.0, 384


class Detector:
    """SCRFD through insightface's pre/post-processing: on ONNX Runtime, or the same graph in torch.

    Runs on `cfg.device`, else `device` (the top-level setting). ONNX Runtime takes CUDA when asked or, for
    `auto`, when the installed onnxruntime has it (`devices.session`); where it has not and torch has CUDA,
    `detect.runtime: auto` runs the graph in torch on the GPU (`scrfd.TorchSCRFD`, the same faces).
    `choice` says what it took and why.
    """

    def __init__(self, cfg: DetectConfig, models_dir: str | Path | None = None,
                 device: str | Device = "auto") -> None:
        model_path = find_model(cfg.model, models_dir)
        dev = stage_device(cfg, device)
        torch_choice = pick_runtime(cfg.runtime, dev, "detector")
        if torch_choice is not None:
            from .scrfd import TorchSCRFD

            self.model, self.choice = TorchSCRFD(model_path, torch_choice.torch_device, cfg.threshold), torch_choice
        else:
            self.model, self.choice = self._onnxruntime(model_path, dev, cfg)
        self.input_size = cfg.input_size
        self.small_faces = cfg.small_faces
        self.min_face = cfg.min_face
        self.path = model_path

    @staticmethod
    def _onnxruntime(model_path: Path, dev: Device, cfg: DetectConfig) -> tuple[Any, Choice]:
        """insightface's SCRFD on an ONNX Runtime session, and the session's Choice."""
        # insightface prints on import and on load; keep the user's terminal for our progress bar.
        import contextlib
        import io

        from ..core.devices import CPU, DeviceError, session

        with contextlib.redirect_stdout(io.StringIO()):
            from insightface.model_zoo.scrfd import SCRFD

            try:
                sess, choice = session(model_path, dev, cfg.threads, what="detector")
            except DeviceError:
                raise
            except Exception as e:  # onnxruntime raises its own types for unreadable files
                raise ModelNotFound(f"cannot load detector {model_path}: {str(e).splitlines()[0]}") from None
            model = SCRFD(model_file=str(model_path), session=sess)
            # a negative ctx_id makes insightface reset the session to the CPU provider; any other leaves ours
            ctx = -1 if choice.names[0] == CPU else 0
            model.prepare(ctx_id=ctx, det_thresh=cfg.threshold, input_size=(cfg.input_size, cfg.input_size))
        return model, choice

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        """The whole-frame pass's input, with the image's aspect ratio (multiples of 32): long side = input_size,
        except that with the small-face pass on, a frame up to NATIVE_UP_TO × input_size is seen at its own size.

        A 16:9 frame in a square input spends ~40% of the detector's time on padding. A 768×576 camera (D1/4CIF
        resolutions are common in CCTV) shrunk to 640 lost most of its small faces: the pedestrians clip gave 159
        faces in 19 tracks at 640 and 383 in 34 at its own 768, for 1.14× the detect time.
        """
        long = max(width, height)
        native = self.small_faces >= 1 and self.input_size < long <= NATIVE_UP_TO * self.input_size
        return scaled(width, height, 1.0 if native else self.input_size / long)

    def small_size(self, width: int, height: int) -> tuple[int, int] | None:
        """Input size of the small-face pass (`detect.small_faces` × the frame), or None where the whole-frame
        pass already sees the frame at (nearly) that scale.

        The whole-frame pass shrinks a 1920×1080 camera frame to 640×384: a 30 px face becomes 10 px and is
        never found. A second pass at the camera's own resolution finds it, at the cost of its pixels.
        """
        if not self.small_faces or self.small_faces * max(width, height) <= NATIVE_UP_TO * self.input_size:
            return None
        return scaled(width, height, self.small_faces)

    def __call__(self, image: np.ndarray, around: list[np.ndarray] | None = None) -> list[Face]:
        """Faces in one BGR image, largest first, smaller than min_face dropped: the whole frame at `input_size`
        and, where that shrinks it, a small-face pass whose finds replace the whole-frame pass's duplicates.

        `around` (boxes, frame px): look for small faces only near these, not over the whole frame. A video
        runs the full small-face pass every `detect.small_every` frames and, in between, this one around the
        faces it follows: at 1920×1080 the full pass costs about seven whole-frame passes.
        """
        h, w = image.shape[:2]
        whole = self.network_size(w, h)
        faces = self._detect(image, whole)
        if self.small_size(w, h) is not None:
            limit = SMALL_AT_INPUT * max(w, h) / max(whole)  # in frame px: what the whole-frame pass sees as small
            found = self._small(image) if around is None else self._around(image, around, limit)
            small = [f for f in found if f.size < limit]
            faces = small + unmatched(faces, small)
        faces = [f for f in faces if f.size >= self.min_face]
        faces.sort(key=lambda f: -f.size)
        return faces

    def _small(self, image: np.ndarray) -> list[Face]:
        return self._detect(image, scaled(image.shape[1], image.shape[0], self.small_faces))

    def _around(self, image: np.ndarray, boxes: list[np.ndarray], limit: float) -> list[Face]:
        """The small-face pass on a window of ROI_SPAN× each small box, duplicates from overlapping windows dropped."""
        h, w = image.shape[:2]
        found: list[Face] = []
        windows: list[tuple[int, int, int, int]] = []
        for box in boxes:
            side = max(box[2] - box[0], box[3] - box[1])
            if side >= limit or any(a <= box[0] and b <= box[1] and box[2] <= c and box[3] <= d
                                    for a, b, c, d in windows):  # a window already looked there
                continue
            half = max(ROI_SPAN * side, ROI_MIN) / 2
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            # on the full pass's grid (multiples of 32 px at small_faces 1), so its anchors sit where they were
            x0, y0 = int(max(0, cx - half)) // 32 * 32, int(max(0, cy - half)) // 32 * 32
            x1, y1 = int(min(w, np.ceil((cx + half) / 32) * 32)), int(min(h, np.ceil((cy + half) / 32) * 32))
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            windows.append((x0, y0, x1, y1))
            for f in self._small(image[y0:y1, x0:x1]):
                f.box += np.array([x0, y0, x0, y0], np.float32)
                f.kps += np.array([x0, y0], np.float32)
                if unmatched([f], found):
                    found.append(f)
        return found

    def _detect(self, image: np.ndarray, size: tuple[int, int]) -> list[Face]:
        boxes, kps = self.model.detect(image, input_size=size)  # insightface's call, or TorchSCRFD's
        if kps is None:
            return []
        return [Face(box=b[:4].astype(np.float32), kps=k.astype(np.float32), score=float(b[4]))
                for b, k in zip(boxes, kps)]


def scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    """A detector input size: the image scaled, each side rounded up to a multiple of 32 (SCRFD's largest stride)."""
    return (int(np.ceil(width * scale / 32) * 32), int(np.ceil(height * scale / 32) * 32))


def unmatched(faces: list[Face], others: list[Face]) -> list[Face]:
    """The faces that overlap none of `others` (IoU ≤ DUPLICATE_IOU)."""
    if not faces or not others:
        return faces
    iou = sv.box_iou_batch(np.stack([f.box for f in faces]), np.stack([o.box for o in others]))
    return [f for f, row in zip(faces, iou) if row.max() <= DUPLICATE_IOU]
