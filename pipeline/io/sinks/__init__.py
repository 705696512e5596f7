"""Sinks: everything the run writes — annotated video, per-track tiles, gallery, manifest.

Enhanced faces are plausible reconstructions, not evidence: every sink keeps the original pixels
beside them and labels the synthesized ones, visibly and in metadata.
"""

from .annotate import Annotator
from .manifest import Manifest
from .tracks import TrackWriter
from .video import VideoWriter

__all__ = ["Annotator", "Manifest", "TrackWriter", "VideoWriter"]
