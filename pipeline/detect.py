"""Detect: insightface SCRFD → Face records with boxes, 5 keypoints and scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import DetectConfig
from .errors import ModelNotFound
from .models import find_model
from .types import Face


class Detector:
    """SCRFD on ONNX Runtime, through insightface's own pre/post-processing.

    Runs on `cfg.device` (else `device`, the top-level setting): CUDA when asked or, for `auto`, when the
    installed onnxruntime has it (`devices.session`); `providers` says what it took and `why`.
    """

    def __init__(self, cfg: DetectConfig, models_dir: str | Path | None = None, device: str = "auto") -> None:
        model_path = find_model(cfg.model, models_dir)
        # insightface prints on import and on load; keep the user's terminal for our progress bar.
        import contextlib
        import io

        from .devices import CPU, DeviceError, session

        with contextlib.redirect_stdout(io.StringIO()):
            from insightface.model_zoo.scrfd import SCRFD

            try:
                sess, self.choice = session(model_path, cfg.device or device, cfg.threads, what="detector")
            except DeviceError:
                raise
            except Exception as e:  # onnxruntime raises its own types for unreadable files
                raise ModelNotFound(f"cannot load detector {model_path}: {str(e).splitlines()[0]}") from None
            self.model = SCRFD(model_file=str(model_path), session=sess)
            # a negative ctx_id makes insightface reset the session to the CPU provider; any other leaves ours
            ctx = -1 if self.choice.names[0] == CPU else 0
            self.model.prepare(ctx_id=ctx, det_thresh=cfg.threshold, input_size=(cfg.input_size, cfg.input_size))
        self.input_size = cfg.input_size
        self.min_face = cfg.min_face
        self.path = model_path

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        """Input size with the image's aspect ratio (multiples of 32), long side = input_size.

        A 16:9 frame in a square input spends ~40% of the detector's time on padding.
        """
        scale = self.input_size / max(width, height)
        return (int(np.ceil(width * scale / 32) * 32), int(np.ceil(height * scale / 32) * 32))

    def __call__(self, image: np.ndarray) -> list[Face]:
        """Faces in one BGR image, largest first, smaller than min_face dropped."""
        boxes, kps = self.model.detect(image, input_size=self.network_size(image.shape[1], image.shape[0]))
        faces = []
        for b, k in zip(boxes, kps if kps is not None else [None] * len(boxes)):
            if k is None:
                continue
            face = Face(box=b[:4].astype(np.float32), kps=k.astype(np.float32), score=float(b[4]))
            if face.size >= self.min_face:
                faces.append(face)
        faces.sort(key=lambda f: -f.size)
        return faces
