"""Enhance: find, follow and super-resolve tiny faces in surveillance video.

Stages, each a small module with one obvious method:
sources → detect → track → align → enhance → sinks, wired by `runner`.
"""

__version__ = "0.1.0"
