"""Sinks: everything the run writes — annotated video, per-track tiles, gallery, manifest.

Enhanced faces are plausible reconstructions, not evidence: every sink keeps the original pixels
beside them and labels the synthesized ones, visibly and in metadata.
"""

from importlib import import_module
from typing import Any

# Loaded on first use (PEP 562): `annotate` imports where PyAV, which the video writer needs, is missing.
_WHERE = {"Annotator": "annotate", "Manifest": "manifest", "TrackWriter": "tracks", "VideoWriter": "video"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
