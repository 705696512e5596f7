"""Sources: a file, an image folder, a camera URL or a webcam as a stream of upright `Frame`s.

Layered like PyAV: `urls` (what a camera URL may show and send), `video` (one FFmpeg container →
frames), `images` (still pictures), `live` (a camera that reconnects), and `probe.open_source`, which
decides which of them an input is.
"""

from importlib import import_module
from typing import Any

# Loaded on first use (PEP 562): a submodule without PyAV (`urls`) imports where PyAV is missing.
_WHERE = {"Source": "base", "ImageSource": "images", "LiveSource": "live", "IMAGE_EXTENSIONS": "probe",
          "open_source": "probe", "redact": "urls", "VideoSource": "video"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
