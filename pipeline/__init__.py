"""Enhance: find, follow and super-resolve tiny faces in surveillance video.

Stages, each a small module with one obvious method, pass one `Face` record along:
sources → detect → track → align → enhance → sinks, one `Session` per source (`runner`), and a report
read back from what the sinks wrote. The README's "How it is built" lists every module.
"""

__version__ = "0.1.0"
