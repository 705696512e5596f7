"""Decoding ahead of the frame loop (`sources/readahead.py`): the same frames in the same order as reading
the source directly, errors raised where the loop can report them, and a stop that really stops decoding."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline.io.sources import open_source  # noqa: E402
from pipeline.io.sources.readahead import READ_AHEAD, ReadAhead  # noqa: E402
from support import media  # noqa: E402
from support.paths import VIDEO, needs_shared  # noqa: E402

OFFICE = VIDEO / "office_fisheye_cctv.mp4"


def _summary(frames) -> list[tuple[int, float, int | None, int]]:
    return [(f.index, f.time, f.pts, int(f.image.astype(np.int64).sum())) for f in frames]


@pytest.mark.slow
@needs_shared
def test_same_frames_as_reading_directly_on_a_damaged_recording(tmp_path):
    bad = media.corrupt_middle(OFFICE, tmp_path / "bad.mp4", start=0.45, length=0.1)
    with open_source(str(bad)) as src:
        direct, skipped, errors = _summary(src), src.skipped, list(src.errors)
    with open_source(str(bad)) as src:
        reader = ReadAhead(src, src.name)
        ahead = _summary(reader)
        reader.close()
        assert (src.skipped, src.errors) == (skipped, errors)
    assert skipped > 0 and len(direct) > 300
    assert ahead == direct


def test_close_stops_decoding_and_joins(tmp_path):
    clip = media.make_video(tmp_path / "clip.mp4", frames=200)
    pulled = 0
    with open_source(str(clip)) as src:

        def counted():
            nonlocal pulled
            for frame in src:
                pulled += 1
                yield frame

        reader = ReadAhead(counted(), src.name)
        it = iter(reader)
        first = [next(it) for _ in range(3)]
        reader.close()
        assert not any(t.name.startswith("read-ahead") for t in threading.enumerate())
        # the frames handed over, those queued and the one the helper held when the queue was full
        assert pulled <= len(first) + READ_AHEAD + 1
        reader.close()  # twice is fine
    assert [media.read_index(f.image) for f in first] == [0, 1, 2]


def test_an_error_in_the_source_is_raised_in_the_loop(tmp_path):
    clip = media.make_video(tmp_path / "clip.mp4", frames=10)
    with open_source(str(clip)) as src:

        def breaks_after_two():
            for frame in src:
                if frame.index == 2:
                    raise MemoryError("out of memory while decoding")
                yield frame

        reader = ReadAhead(breaks_after_two(), src.name)
        got = []
        with pytest.raises(MemoryError, match="out of memory"):
            for frame in reader:
                got.append(frame.index)
        reader.close()
    assert got == [0, 1]
