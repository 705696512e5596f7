"""The training pack: short high-resolution talking-head clips of real people, cut from public repositories
of talking-head and face-animation work (`sources.csv`: repository, commit, path, licence, crop, and the
person's age group and skin tone). `build.py` rebuilds `clips/` from fetched snapshots of those
repositories; README.md says how, and what was left out and why."""

from pathlib import Path

PACK = Path(__file__).resolve().parent
CLIPS = PACK / "clips"  # <person>_<n>.mp4; the split by person is configs/video_split.yaml
SOURCES = PACK / "sources.csv"
