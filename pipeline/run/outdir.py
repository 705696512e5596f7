"""The output folder: one run writes to it at a time, and one run's results are never mixed with another's.

A run holds an exclusive `flock` on the folder itself while it writes (the kernel drops it when the
process ends, even on `kill -9`, so a crashed run never leaves a stale lock). A second run into the same
folder is refused with one line. A folder that already holds a run's outputs is refused too, or, with
`--overwrite`, those outputs are removed first, so the new run's report never shows the old run's tracks.
Only the names a run writes are ever removed; anything else in the folder is left alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from fnmatch import fnmatch
from pathlib import Path

from ..core.errors import OutputError

# What a run writes at the top of its folder (a run of several sources also writes one run per subfolder).
# `name*` covers the name's temporary files (`manifest.json.<n>.tmp`, …).
OUTPUT_NAMES = ("manifest.json*", "faces.csv", "events.jsonl", "annotated.mp4", "annotated_[0-9][0-9][0-9][0-9].mp4",
                "gallery.png*", "report.html*", "people.json*", "tracks", ".enhance-reserve", "detections.jsonl")


class FolderLock:
    """An exclusive lock on a folder, held until `release` (or the process ends)."""

    def __init__(self, folder: Path, hint: str = " or choose another --out") -> None:
        self.folder = Path(folder)
        try:
            self._fd: int | None = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise OutputError(f"cannot open output folder {self.folder}: {e.strerror or e}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise OutputError(f"output folder {self.folder} is in use by another run: wait for it to end{hint}") from None
        except OSError:  # a file system without locks (some network mounts): run unguarded rather than not at all
            pass

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(folder: Path) -> bool:
    """Whether a run (another open lock) is writing to `folder` right now."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # missing or unreadable: nobody holds it
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def is_output(path: Path) -> bool:
    """A name a run writes, or a subfolder holding a run of its own."""
    if any(fnmatch(path.name, pattern) for pattern in OUTPUT_NAMES):
        return True
    return path.is_dir() and any((path / name).exists() for name in ("manifest.json", "tracks"))


def previous_outputs(folder: Path) -> list[Path]:
    """What an earlier run left in `folder` (sorted)."""
    try:
        return sorted(p for p in folder.iterdir() if is_output(p))
    except FileNotFoundError:
        return []


def claim(folder: Path, overwrite: bool = False) -> FolderLock:
    """Lock `folder` for this run; refuse it when it holds an earlier run, unless `overwrite` removes that run.

    The folder must exist and be writable (see `session.prepare_out`).
    """
    lock = FolderLock(folder)
    try:
        old = previous_outputs(folder)
        if old and not overwrite:
            names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in old[:4]) + (", …" if len(old) > 4 else "")
            raise OutputError(f"output folder {folder} already holds a run ({names}): choose another --out, "
                              "or add --overwrite to replace that run")
        for p in old:
            _remove(p)
    except BaseException:
        lock.release()
        raise
    return lock


def _remove(path: Path) -> None:
    """Delete an earlier run's output; a subfolder run that is still being written is refused."""
    try:
        if path.is_dir() and not path.is_symlink():
            with FolderLock(path):
                shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as e:
        raise OutputError(f"cannot remove the earlier run's {path}: {e.strerror or e}") from None
