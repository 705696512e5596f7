"""Finishing what a crashed run left: `enhance-faces gallery DIR` calls `recover` before it writes the report.

A run killed outright (`kill -9`, power loss, out of memory) leaves a manifest that says "running" in a
folder no process holds any more. Recovering it: the annotated video is cut back to its last complete
fragment (it plays to there), the manifest's reserve and temporary files are removed, and the manifest is
rewritten with status "crashed", the files now on disk and the frames the video holds. The tracks that
were open at the crash are lost; every track that had ended is there and goes into the report.
"""

from __future__ import annotations

import json
import struct
from datetime import datetime, timezone
from pathlib import Path

import av

from ..core.errors import OutputError
from ..io.sinks.manifest import RESERVE, list_files, write_json
from .batch import JOB_KIND
from .outdir import is_locked, read_manifest

NOTE = ("The run ended without finishing (killed, power loss or out of memory); recovered by `enhance-faces gallery` "
        "at {at}: files re-listed, the annotated video cut to its last complete fragment. Tracks still open "
        "at the crash were not written.")


def run_folders(out: Path) -> list[Path]:
    """`out` itself, or its direct subfolders, that hold a manifest (a job's manifest at the top is not a run:
    its runs are in the subfolders)."""
    if (out / "manifest.json").is_file() and (read_manifest(out) or {}).get("kind") != JOB_KIND:
        return [out]
    return sorted(d for d in out.iterdir() if (d / "manifest.json").is_file()) if out.is_dir() else []


def recover(out: Path) -> list[Path]:
    """Mark every crashed run in `out` as such and make its folder consistent; returns those folders.

    The caller holds `out`'s lock (`outdir.FolderLock`); a run still writing in a subfolder is an OutputError.
    """
    done = []
    for d in run_folders(out):
        try:
            manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # the report says it is unreadable
        if not isinstance(manifest, dict) or manifest.get("status") != "running":
            continue
        if d != out and is_locked(d):
            raise OutputError(f"{d} is being written by a running run: wait for it to end")
        for junk in [d / RESERVE, *d.rglob("*.tmp")]:
            junk.unlink(missing_ok=True)
        videos = sorted(d.glob("annotated*.mp4"))
        for video in videos:
            cut_to_complete(video)
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        manifest["status"] = "crashed"
        manifest["recovered"] = at
        manifest["note"] = NOTE.format(at=at)
        manifest.setdefault("stats", {})["video_frames"] = sum(video_frames(v) for v in videos)
        manifest["files"] = list_files(d)
        write_json(d / "manifest.json", manifest)
        done.append(d)
    return done


def relist(run_dir: Path) -> None:
    """Bring a manifest's list of files up to date (after the report was written into its folder)."""
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["files"] = list_files(run_dir)
    write_json(path, manifest)


def cut_to_complete(path: Path) -> int:
    """Truncate an MP4 after its last complete top-level box (a fragment's `moof` only with its `mdat`);
    returns the new size. A write cut short mid-fragment leaves a file that would end in garbage."""
    size = path.stat().st_size
    pos = end = 0
    with open(path, "rb") as f:
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            n, kind = struct.unpack(">I4s", head[:8])
            if n == 1 and len(head) == 16:
                n = struct.unpack(">Q", head[8:])[0]
            elif n == 0:
                n = size - pos
            if n < 8 or pos + n > size:
                break
            pos += n
            if kind != b"moof":
                end = pos
    if end < size:
        with open(path, "r+b") as f:
            f.truncate(end)
    return end


def video_frames(path: Path) -> int:
    """Frames in a video file, counted from its packets (0 if it cannot be read)."""
    try:
        with av.open(str(path)) as c:
            return sum(1 for p in c.demux(video=0) if p.size)
    except (av.error.FFmpegError, OSError, IndexError):
        return 0
