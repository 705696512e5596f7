"""Which sources a command line names, what each one's output folder is called, and how many run at once.

A folder holding video files (at any depth) is an archive of recordings: every one of them, in a stable
(natural, by relative path) order, each named by its path inside the folder. A folder of pictures with no
video in it stays one image sequence, as before. A list file (`*.txt`, `*.list`, `*.lst`) names one input
per line. A recording with several camera streams (a DVR export, one per channel) is one input per camera,
`FILE:v:N` as FFmpeg names them. Both engines (threads here, Ray tasks on a cluster) expand inputs and name
folders here, so the same recording lands in the same `OUT/<name>/` whichever runs it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..core.errors import InputError
from ..io.sources.images import natural_key
from ..io.sources.probe import IMAGE_EXTENSIONS, STREAM_SPEC, camera_streams
from ..io.sources.urls import NETWORK_SCHEMES, redact

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".vob", ".flv",
    ".wmv", ".asf", ".3gp", ".ogv", ".mxf", ".dav", ".h264", ".264", ".h265", ".265", ".hevc",
})
LIST_EXTENSIONS = frozenset({".txt", ".list", ".lst"})
# A running source holds a decoder, an encoder's look-ahead, its open tracks and the detector's working memory
# for its frame size: peak RSS of one run over the ~0.55 GB of shared models, measured (2026-11-28): 640x360
# +0.05 GB, 1920x1080 +0.55 GB, 3840x2160 +2.9 GB (the small-face pass at the camera's own pixels).
MEMORY_PER_SOURCE = 512 << 20  # at least
MEMORY_PER_PIXEL = 360  # bytes per pixel of the source's frame, above that


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


def is_live(spec: str) -> bool:
    """A camera (network stream or webcam) rather than a file or folder."""
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""
    return scheme in NETWORK_SCHEMES or re.fullmatch(r"/dev/video\d+", spec) is not None


def expand(specs: list[str], lists: bool = True) -> list[Input]:
    """Command-line inputs → sources: folders of recordings and list files opened up, the rest as given.

    Raises InputError for a list file that cannot be read; a missing path is left to `open_source`,
    which says so in one line. (A list file inside a list file is not followed.)
    """
    out: list[Input] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if "://" in spec or is_live(spec):
            out.append(Input(spec))
        elif path.is_dir():
            out.extend(recordings(path) or [Input(spec)])
        elif lists and path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            out.extend(expand(listed(path), lists=False))
        else:
            out.extend(channels(Input(spec)))
    return out


def channels(item: Input) -> list[Input]:
    """A recording with several camera streams as one input per camera (`FILE:v:N`), else itself."""
    path = Path(item.spec).expanduser()
    if not (path.is_file() and _is_video(path)):
        return [item]
    found = camera_streams(path)
    if len(found) < 2:
        return [item]
    return [Input(f"{item.spec}:v:{n}", item.name and f"{item.name}:v:{n}") for n in found]


def recordings(folder: Path) -> list[Input]:
    """Every video file under `folder` (hidden files and folders skipped), by natural order of relative path."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            p = Path(root, name)
            if not name.startswith(".") and _is_video(p):
                found.append(p)
    found.sort(key=lambda p: [natural_key(part) for part in p.relative_to(folder).parts])
    return [c for p in found for c in channels(Input(str(p), p.relative_to(folder).as_posix()))]


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
