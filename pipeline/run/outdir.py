"""The output folder: one run writes to it at a time, and one run's results are never mixed with another's.

A run holds an exclusive `flock` on the folder itself while it writes (the kernel drops it when the
process ends, even on `kill -9`, so a crashed run never leaves a stale lock). A second run into the same
folder is refused with one line. A folder that already holds a run's outputs is refused too, or, with
`--overwrite`, those outputs are removed first, so the new run's report never shows the old run's tracks.
Only the names a run writes are ever removed; anything else in the folder is left alone.

A job of several sources (`claim_job`) decides per source folder by run identity (`batch.identity`): a
finished run of the same identity is skipped, an unfinished one (interrupted, crashed, failed) is redone,
and one made with other settings or input is refused in one line naming what differs, unless
`--overwrite` redoes it. Runs of sources that are not part of the job are refused likewise: a job's
report never mixes in another job's recordings.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterable
from contextlib import ExitStack
from fnmatch import fnmatch
from pathlib import Path
from typing import Literal

from ..core.errors import OutputError
from .batch import FINISHED, JOB_KIND, describe, differences

Decision = Literal["new", "skip", "redo"]

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


def read_manifest(folder: Path) -> dict | None:
    """`folder/manifest.json`, or None when there is none or it cannot be read."""
    try:
        m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def decide(folder: Path, identity: dict, overwrite: bool, live: bool = False) -> tuple[Decision | None, list[str]]:
    """What to do with `folder` for a run of `identity`: "new" (nothing there), "skip" (a finished run of the
    same identity), "redo" (an unfinished run, or `overwrite`), or None with the names that differ.

    A camera's earlier run is never redone unasked: a live run normally ends interrupted.
    """
    m = read_manifest(folder)
    if m is None and not previous_outputs(folder):
        return "new", []
    if overwrite:
        return "redo", []
    if live:
        return None, ["a camera's earlier run"]
    if m is None:
        return None, ["a run without a manifest"]
    if m.get("kind") == JOB_KIND:
        return None, ["a job of several sources"]
    if m.get("status") not in FINISHED:
        return "redo", []  # interrupted, crashed or failed: nothing finished to keep
    diff = differences(m.get("identity"), identity)
    return ("skip", []) if not diff else (None, diff)


class Claim:
    """A job's hold on its output folder: the locks, and what to do with each source (`decisions`)."""

    def __init__(self) -> None:
        self.stack = ExitStack()
        self.decisions: list[Decision] = []

    def close(self) -> None:
        self.stack.close()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def claim_job(out: Path, targets: list[tuple[Path, dict, bool]], overwrite: bool = False,
              lock_targets: bool = True, others: Iterable[str] = ()) -> Claim:
    """Lock `out` and decide for every (folder, identity, live) target; refuse in one line (OutputError) when
    a finished run differs or `out` holds runs of other sources, unless `overwrite`; remove what is redone.

    `out` must exist. A target that is `out` itself is a single run's folder; others are `out/<name>/`,
    created and locked (`lock_targets`) when they are to run. `others`: folder names of the job's sources
    that are not decided here (those that cannot be opened): theirs, not another job's.
    """
    claim = Claim()
    try:
        claim.stack.enter_context(FolderLock(out))
        refused: list[tuple[Path, list[str]]] = []
        if all(t != out for t, _, _ in targets):
            mine = {t.name for t, _, _ in targets} | set(others)
            foreign = [p for p in previous_outputs(out) if p.is_dir() and p.name not in mine]
            job = read_manifest(out)
            if job is not None and job.get("kind") != JOB_KIND:
                foreign.append(out / "manifest.json")  # a single run at the top
            if foreign and not overwrite:
                names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in foreign[:4]) + (", …" if len(foreign) > 4 else "")
                raise OutputError(f"output folder {out} holds runs of other inputs ({names}): choose another --out, "
                                  "or add --overwrite to remove them")
            if overwrite:  # everything at the top but this job's own folders (decided below)
                for p in previous_outputs(out):
                    if not (p.is_dir() and p.name in mine):
                        _remove(p)
        for folder, identity, live in targets:
            decision, diff = decide(folder, identity, overwrite, live)
            if decision is None:
                refused.append((folder, diff))
            claim.decisions.append(decision or "skip")
        if refused:
            raise OutputError(_refusal(out, refused))
        for (folder, _, _), decision in zip(targets, claim.decisions):
            if decision == "redo":
                for p in previous_outputs(folder) if folder == out else [folder]:
                    _remove(p)
            if decision != "skip" and folder != out and lock_targets:
                folder.mkdir(parents=True, exist_ok=True)
                claim.stack.enter_context(FolderLock(folder))
    except BaseException:
        claim.close()
        raise
    return claim


def _refusal(out: Path, refused: list[tuple[Path, list[str]]]) -> str:
    names = sorted({n for _, diff in refused for n in diff})
    if len(refused) == 1:
        folder = refused[0][0]
        return (f"output folder {folder} already holds a run with other settings or input ({describe(names)}): "
                "add --overwrite to redo it, or choose another --out")
    return (f"output folder {out} already holds {len(refused)} runs made with other settings or input "
            f"({describe(names)}): add --overwrite to redo them, or choose another --out")
