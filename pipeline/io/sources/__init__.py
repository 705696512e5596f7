"""Sources: a file, an image folder, a camera URL or a webcam as a stream of upright `Frame`s.

Layered like PyAV: `urls` (what a camera URL may show and send), `video` (one FFmpeg container →
frames), `images` (still pictures), `live` (a camera that reconnects), and `probe.open_source`, which
decides which of them an input is.
"""

from .base import Source
from .images import ImageSource
from .live import LiveSource
from .probe import IMAGE_EXTENSIONS, open_source
from .urls import redact
from .video import VideoSource

__all__ = ["IMAGE_EXTENSIONS", "ImageSource", "LiveSource", "Source", "VideoSource", "open_source", "redact"]
