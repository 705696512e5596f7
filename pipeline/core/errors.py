"""User-facing errors: the CLI prints these as one line and exits non-zero, with no traceback."""

from __future__ import annotations


class EnhanceError(Exception):
    """A problem with the user's input, configuration or environment (not a bug)."""

    exit_code = 2


class InputError(EnhanceError):
    """A source could not be opened or decoded.

    `reason`: why, without the source's name (a camera's retry loop words its own message around it);
    `permanent`: retrying cannot help (a wrong password, a file with no video stream).
    """

    def __init__(self, message: str, reason: str | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.permanent = permanent


class ConfigError(EnhanceError):
    """A configuration file, key or value is wrong."""


class ModelNotFound(EnhanceError):
    """A model file was not found where we looked."""


class OutputError(EnhanceError):
    """An output could not be written (disk full, I/O error, folder in use): the run stops, what was
    written is finalized and listed."""

    exit_code = 74  # EX_IOERR


def write_error(path: object, e: OSError) -> OutputError:
    """`OutputError` naming the path and the cause, e.g. "cannot write out/faces.csv: No space left on device"."""
    return OutputError(f"cannot write {path}: {e.strerror or e}")
