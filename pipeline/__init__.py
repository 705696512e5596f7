"""Enhance: find, follow and super-resolve tiny faces in surveillance video.

Stages, each a small module with one obvious method, pass one `Face` record along:
sources → detect → track → align → enhance → sinks, one `Session` per source (`runner`), and a report
read back from what the sinks wrote. docs/architecture.md maps every module.

The Python API (`FaceEnhancer`, `to_detections`, in `api`) loads on first use, so `import pipeline`
(and the command line's start) stays light.
"""

from .core.version import __version__

__all__ = ["FaceEnhancer", "__version__", "to_detections"]
_API = ("FaceEnhancer", "to_detections")


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: the API's heavy imports wait until it is used
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
