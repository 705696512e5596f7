"""Which sources a command line names, what each one's output folder is called, and how many run at once.

A folder holding video files (at any depth) is an archive of recordings: every one of them, in a stable
(natural, by relative path) order, each named by its path inside the folder. A folder of pictures with no
video in it stays one image sequence, as before. A list file (`*.txt`, `*.list`, `*.lst`) names one input
per line. A recording with several camera streams (a DVR export, one per channel) is one input per camera,
`FILE:v:N` as FFmpeg names them. Outputs never become inputs: the run's own output folder, and any folder
holding an earlier run (its `manifest.json`), are skipped when a folder is searched, and an output folder
that is the input folder itself is refused. Both engines (threads here, Ray tasks on a cluster) expand inputs and name
folders here, so the same recording lands in the same `OUT/<name>/` whichever runs it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..core.errors import InputError
from ..io.sources.base import MEMORY_PER_PIXEL, MEMORY_PER_SOURCE
from ..io.sources.images import natural_key
from ..io.sources.probe import IMAGE_EXTENSIONS, STREAM_SPEC, camera_streams, split_stream
from ..io.sources.urls import is_live, redact
from .outdir import is_output, previous_outputs

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".vob", ".flv",
    ".wmv", ".asf", ".3gp", ".ogv", ".mxf", ".dav", ".h264", ".264", ".h265", ".265", ".hevc",
})
LIST_EXTENSIONS = frozenset({".txt", ".list", ".lst"})


@dataclass(frozen=True)
class Input:
    """One source to open: `spec` for `open_source`, `name` to show (a recording's path in its folder)."""

    spec: str
    name: str | None = None

    @property
    def live(self) -> bool:
        return is_live(self.spec)

    def label(self) -> str:
        """What the source is called before it is opened: the name its output folder is made from."""
        if self.name:
            return self.name
        if self.live:
            if "://" not in self.spec:
                return Path(self.spec).name  # /dev/videoN
            parts = urlsplit(redact(self.spec))
            return parts.netloc + parts.path or redact(self.spec)
        return Path(self.spec).name or Path(self.spec).resolve().name or self.spec


def expand(specs: list[str], lists: bool = True, out: Path | None = None) -> list[Input]:
    """Command-line inputs → sources: folders of recordings and list files opened up, the rest as given.

    `out` (the run's output folder) is never searched for recordings, and is refused when it is an input
    folder itself (its results would be read back as new cameras). Raises InputError for a list file that
    cannot be read; a missing path is left to `open_source`, which says so in one line. (A list file inside
    a list file is not followed.)
    """
    found: list[Input] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if "://" in spec or is_live(spec):
            found.append(Input(spec))
        elif path.is_dir():
            if out is not None and _same(path, out):
                raise InputError(f"output folder {out} is the input folder {spec}: its results would be read as "
                                 "new recordings; choose an --out outside it")
            found.extend(recordings(path, out) or [Input(spec)])
        elif lists and path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            found.extend(expand(listed(path), lists=False, out=out))
        else:
            found.extend(channels(Input(spec)))
    return found


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == Path(b).expanduser().resolve()
    except OSError:  # a symlink loop: not the same as anything
        return False


def holds_a_run(folder: Path) -> bool:
    """Whether `folder` holds a run's outputs: a manifest.json as runs write it (an object with a status)."""
    manifest = folder / "manifest.json"
    try:
        if manifest.stat().st_size > 64 << 20:
            return False
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "status" in data and "files" in data


def channels(item: Input) -> list[Input]:
    """A recording with several camera streams as one input per camera (`FILE:v:N`), else itself."""
    path = Path(item.spec).expanduser()
    if not (path.is_file() and _is_video(path)):
        return [item]
    found = camera_streams(path)
    if len(found) < 2:
        return [item]
    return [Input(f"{item.spec}:v:{n}", item.name and f"{item.name}:v:{n}") for n in found]


def recordings(folder: Path, out: Path | None = None) -> list[Input]:
    """Every video file under `folder` (hidden files and folders skipped), by natural order of relative path.

    Outputs are not recordings: the folder `out` and every folder holding a run are skipped, with their
    subfolders."""
    found = []
    skip = Path(out).expanduser().resolve() if out is not None else None
    for root, dirs, names in os.walk(folder):
        if Path(root) != folder and (holds_a_run(Path(root)) or (skip is not None and _same(Path(root), skip))):
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if Path(root) == folder and holds_a_run(folder):  # an earlier run wrote here: its video is no camera
            dirs[:] = [d for d in dirs if not is_output(folder / d)]
            names = [n for n in names if not is_output(folder / n)]
        for name in names:
            p = Path(root, name)
            if not name.startswith(".") and _is_video(p):
                found.append(p)
    found.sort(key=lambda p: [natural_key(part) for part in p.relative_to(folder).parts])
    return [c for p in found for c in channels(Input(str(p), p.relative_to(folder).as_posix()))]


def not_outputs(specs: list[str], out: Path) -> None:
    """Refuse an input that an earlier run wrote into `out`: replacing that run (--overwrite) would delete
    the file while this run reads it, and without --overwrite the folder is refused anyway."""
    if not Path(out).is_dir():  # nothing written there yet (or not a folder: `prepare_out` says so)
        return
    old = [p.resolve() for p in previous_outputs(Path(out))]
    for spec in specs:
        if "://" in spec or is_live(spec):
            continue
        path = Path(split_stream(spec)[0]).expanduser()
        try:
            path = path.resolve()
        except OSError:
            continue
        if any(path == p or p in path.parents for p in old):
            raise InputError(f"input {spec} is an earlier run's output in {out}: it would be replaced while it is "
                             "read; copy it out of that folder or choose another --out")


def listed(path: Path) -> list[str]:
    """A list file's inputs: one file, folder or camera per line, blank lines and `#` lines skipped; a
    relative path is relative to the list file's folder."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read list file {path}: {getattr(e, 'strerror', None) or e}") from None
    specs = []
    for line in (ln.strip() for ln in lines):
        if not line or line.startswith("#"):
            continue
        if "://" not in line and not is_live(line) and not Path(line).expanduser().is_absolute():
            line = str(path.parent / line)
        specs.append(line)
    return specs


# Leading bytes of the common video containers, for recordings whose names do not say what they are.
_MAGIC = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"\x00\x00\x01\xba"), (0, b"FLV"),
          (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"))


def _is_video(p: Path) -> bool:
    suffix = p.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return True
    if suffix in IMAGE_EXTENSIONS or suffix in LIST_EXTENSIONS:
        return False
    try:
        with open(p, "rb") as f:
            head = f.read(189)
    except OSError:
        return False
    if head[:4] == b"RIFF" and head[8:11] == b"AVI":
        return True
    if len(head) == 189 and head[0] == head[188] == 0x47:  # MPEG transport stream: a sync byte every 188
        return True
    return any(head[at:at + len(magic)] == magic for at, magic in _MAGIC)


def safe_name(name: str) -> str:
    """A file-system-safe folder name for a source."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep or "source"


def folder_names(labels: list[tuple[str, bool]]) -> list[str]:
    """Output folder names, unique and in order, for (label, keep_whole) pairs: a recording's label loses
    its extension (`cam1/0001.mp4` → `cam1_0001`, its stream `dvr.mkv:v:1` → `dvr_v1`); a camera's name is
    kept whole."""
    names: list[str] = []
    for label, whole in labels:
        m = None if whole else STREAM_SPEC.fullmatch(label)
        stem = str(Path(m[1] if m else label).with_suffix(""))
        name = safe_name(label if whole else stem + (f"_v{m[2]}" if m else ""))
        while name in names:
            name += "_"
        names.append(name)
    return names


def default_jobs(pixels: int = 0) -> int:
    """How many sources this machine can run at once: one per CPU core, fewer if memory is short for frames
    of `pixels` (the largest recording's width × height)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, available_memory() // max(MEMORY_PER_SOURCE, MEMORY_PER_PIXEL * pixels)))


def available_memory() -> int:
    """Bytes of memory available to new work (MemAvailable), or a large number where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62
