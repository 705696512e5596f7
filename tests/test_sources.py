"""Source stage on real footage and on purpose-made odd/damaged files (see tests/support/media.py)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline.core.config import SourceConfig  # noqa: E402
from pipeline.core.errors import InputError  # noqa: E402
from pipeline.io.sources import ImageSource, VideoSource, open_source, redact  # noqa: E402
from support import media  # noqa: E402
from support.paths import IMAGES, VIDEO, needs_shared  # noqa: E402

OFFICE = VIDEO / "office_fisheye_cctv.mp4"
MEGAMIND = VIDEO / "megamind_animated.avi"
PEDESTRIANS = VIDEO / "pedestrians_vtest.avi"



def _rss() -> int | None:
    """Resident memory now (Linux), to show decoding is streamed."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def read_all(spec, cfg: SourceConfig | None = None):
    with open_source(str(spec), cfg) as src:
        return src, list(src)


def assert_increasing(frames) -> None:
    times = [f.time for f in frames]
    assert all(b > a for a, b in zip(times, times[1:])), "frame times must strictly increase"
    assert [f.index for f in frames] == list(range(len(frames)))


# ------------------------------------------------------------------ real footage


@needs_shared
def test_office_cctv_every_frame_with_increasing_times():
    rss = {}
    with open_source(str(OFFICE)) as src:
        frames = []
        for f in src:  # keep the metadata, drop the pixels but for one sample
            frames.append(f if f.index == 10 else dataclasses.replace(f, image=f.image[:1, :1].copy()))
            if f.index in (0, 600):
                rss[f.index] = _rss()
    if rss[0] is not None:  # 600 frames are 380 MB if anything holds on to them
        assert rss[600] - rss[0] < 100e6, "memory grows with the video: frames must be streamed"
    assert len(frames) == media.count_packets(OFFICE) == src.frame_count
    assert (src.width, src.height) == (640, 360)
    assert src.fps == pytest.approx(29.97, abs=0.01)
    assert src.duration == pytest.approx(21.4, abs=0.3)
    assert src.time_base == Fraction(1, 30000)
    assert not src.live and src.skipped == 0 and src.errors == []
    assert src.name == "office_fisheye_cctv.mp4" and src.uri == str(OFFICE)
    assert_increasing(frames)
    assert frames[0].time == pytest.approx(0.0, abs=1e-6)
    assert frames[-1].time == pytest.approx(21.35, abs=0.1)
    f = frames[10]
    assert f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
    assert f.source == src.name and f.pts is not None


@needs_shared
def test_broken_ac3_audio_does_not_stop_video():
    import av

    with av.open(str(MEGAMIND)) as c:  # the premise: there is an audio track next to the video
        assert [s.type for s in c.streams] == ["video", "audio"]
    src, frames = read_all(MEGAMIND)
    assert len(frames) == media.count_packets(MEGAMIND) == 270
    assert src.skipped == 0
    assert (src.width, src.height) == (720, 528)
    # packed B-frames in AVI give reordered pts; times must still run forward, at ~24 fps
    assert_increasing(frames)
    assert frames[-1].time == pytest.approx(270 / 23.976, abs=0.1)


@needs_shared
def test_msmpeg4v3_avi_with_max_frames():
    src, frames = read_all(PEDESTRIANS, SourceConfig(max_frames=5))
    assert len(frames) == 5
    assert (src.width, src.height, src.fps, src.frame_count) == (768, 576, 10.0, 795)
    assert [f.time for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert frames[4].image.std() > 10  # a real picture, not a grey placeholder


@needs_shared
def test_wrong_extension_is_probed_by_content(tmp_path):
    renamed = tmp_path / "clip.avi"
    shutil.copyfile(OFFICE, renamed)
    src, frames = read_all(renamed, SourceConfig(max_frames=3))
    assert len(frames) == 3 and (src.width, src.height) == (640, 360)


def test_h265_in_a_jpg_named_file(tmp_path):
    path = media.make_video(tmp_path / "camera.jpg", frames=12, codec="h265", container="mp4")
    src, frames = read_all(path)
    assert isinstance(src, VideoSource)
    assert len(frames) == 12 and (src.width, src.height) == (64, 48)
    assert [media.read_index(f.image) for f in frames] == list(range(12))


def test_decoder_threads_from_config(tmp_path):
    path = media.make_video(tmp_path / "t.mp4", frames=4)
    with open_source(str(path), SourceConfig(threads=2)) as src:
        assert len(list(src)) == 4
        assert src._stream.codec_context.thread_count == 2


# ------------------------------------------------------------------ rotation, VFR


@pytest.mark.parametrize(
    "rotate, corner",
    [(90, (slice(0, 8), slice(-8, None))), (180, (slice(-8, None), slice(-8, None))), (270, (slice(-8, None), slice(0, 8)))],
)
def test_rotation_metadata_is_applied(tmp_path, rotate, corner):
    # the encoded picture has a bright top-left corner; shown rotated clockwise by `rotate`
    path = media.make_video(tmp_path / "phone.mp4", frames=5, size=(64, 48), rotate=rotate)
    src, frames = read_all(path)
    swapped = rotate in (90, 270)
    assert (src.width, src.height) == ((48, 64) if swapped else (64, 48))
    for f in frames:
        assert f.image.shape[:2] == (src.height, src.width)
        assert f.image[corner].mean() > 200, "bright corner not where an upright frame has it"
    # frame 0 has no index blocks: every other corner is dark
    corners = [(slice(r, r + 8) if r == 0 else slice(-8, None), slice(c, c + 8) if c == 0 else slice(-8, None))
               for r in (0, -8) for c in (0, -8)]
    dark = [frames[0].image[c].mean() < 120 for c in corners if c != corner]
    assert dark == [True, True, True]


def test_vfr_times_follow_pts(tmp_path):
    expected = media.vfr_times(20)
    path = media.make_video(tmp_path / "vfr.mp4", frames=20, vfr=expected)
    src, frames = read_all(path)
    assert [f.time for f in frames] == pytest.approx(expected, abs=2e-3)
    assert [media.read_index(f.image) for f in frames] == list(range(20))
    # and not what a constant rate would have made up
    assert frames[-1].time != pytest.approx(19 / src.fps, abs=0.05)


def test_audio_track_in_made_file_is_ignored(tmp_path):
    path = media.make_video(tmp_path / "av.mp4", frames=15, audio=True)
    src, frames = read_all(path)
    assert len(frames) == 15 and src.skipped == 0


# ------------------------------------------------------------------ damaged files


@needs_shared
def test_each_camera_of_a_dvr_export_is_read_by_its_stream(tmp_path):
    """Two channels of different sizes and a cover picture: the file alone reads the first camera (not the
    cover), `FILE:v:N` picks any video stream, a number past the last one is a one-line error."""
    one = [media.pattern(i, (64, 48)) for i in range(12)]
    two = [media.pattern(100 + i, (96, 64)) for i in range(9)]
    path = media.make_channels(tmp_path / "dvr.mp4", [one, two])
    src, frames = read_all(path)
    assert (src.width, src.height, src.name) == (64, 48, "dvr.mp4")
    assert [media.read_index(f.image) for f in frames] == list(range(12))
    src, frames = read_all(f"{path}:v:1")
    assert (src.width, src.height, src.name, src.uri) == (96, 64, "dvr.mp4:v:1", f"{path}:v:1")
    assert [media.read_index(f.image) for f in frames] == list(range(100, 109))
    assert_increasing(frames)
    assert len(read_all(f"{path}:v:2")[1]) == 1  # the cover, asked for by name
    with pytest.raises(InputError, match=r"no video stream v:3 in .*dvr.mp4:v:3 \(it has 3: v:0 to v:2\)"):
        open_source(f"{path}:v:3")
    picture = shutil.copy(IMAGES / "crowd_selfie_sample.jpg", tmp_path / "still.jpg")
    with pytest.raises(InputError, match="is a picture"):
        open_source(f"{picture}:v:0")
    named = tmp_path / "odd:v:1"  # a file whose own name ends like a stream is taken whole
    shutil.copy(path, named)
    assert read_all(named)[0].width == 64


@pytest.mark.parametrize("size, aspect, shown", [((352, 576), Fraction(24, 11), (768, 576)),
                                                  ((720, 480), Fraction(8, 9), (720, 540)),
                                                  ((720, 576), Fraction(16, 15), (768, 576))])
def test_non_square_pixels_are_shown_square(tmp_path, size, aspect, shown):
    """Half-D1, NTSC and PAL D1 DVR channels store non-square pixels: a round disc comes back round, at the
    size a player shows, with no camera sample dropped (the stretched side grows)."""
    w, h = size
    image = np.full((h, w, 3), 40, np.uint8)
    cv2.ellipse(image, (w // 2, h // 2), (round(120 / aspect), 120), 0, 0, 360, (230, 230, 230), -1)
    src, frames = read_all(media.encode(tmp_path / "dvr.mp4", [image] * 3, aspect=aspect))
    assert (src.width, src.height) == shown and src.pixel_aspect == aspect
    ys, xs = np.nonzero(frames[0].image[..., 1] > 128)
    assert abs((xs.max() - xs.min()) - (ys.max() - ys.min())) <= 4  # round again
    square = read_all(media.encode(tmp_path / "square.mp4", [image[:, : w // 2]] * 2))[0]
    assert (square.width, square.height, square.pixel_aspect) == (w // 2, h, 1)


def test_truncated_mp4_yields_what_is_there(tmp_path):
    cut = media.truncate(OFFICE, tmp_path / "cut.mp4", 0.6)
    src, frames = read_all(cut)
    assert 100 < len(frames) < 641
    assert_increasing(frames)
    assert frames[-1].time < 18


@needs_shared
def test_garbage_mid_stream_yields_frames_before_and_after(tmp_path):
    bad = media.corrupt_middle(OFFICE, tmp_path / "bad.mp4", start=0.45, length=0.1)
    src, frames = read_all(bad)
    times = [f.time for f in frames]
    assert src.skipped > 0 or len(frames) < 641
    assert src.skipped == 0 or src.errors  # anything skipped is described
    assert len(src.errors) <= 20
    assert min(times) < 1 and max(times) > 20, "lost frames before or after the damage"
    assert_increasing(frames)
    assert all("\n" not in e for e in src.errors)


def test_garbage_mid_made_avi(tmp_path):
    path = media.make_video(tmp_path / "x.avi", frames=120, codec="mpeg4", size=(160, 120))
    bad = media.corrupt_middle(path, tmp_path / "bad.avi", start=0.5, length=0.1)
    src, frames = read_all(bad)
    assert 0 < len(frames) < 120
    assert media.read_index(frames[0].image) == 0
    assert media.read_index(frames[-1].image) >= 110
    assert_increasing(frames)


# ------------------------------------------------------------------ bad input


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    (tmp / "noise.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    (tmp / "no_images").mkdir()
    (tmp / "no_images" / "readme.txt").write_text("nothing to see")
    (tmp / "empty_dir").mkdir()
    return {
        "zero-length": tmp / "empty.mp4",
        "missing": tmp / "missing.mp4",
        "text as mp4": tmp / "notes.mp4",
        "random bytes": tmp / "noise.mp4",
        "folder without images": tmp / "no_images",
        "empty folder": tmp / "empty_dir",
        "audio only": media.make_audio_only(tmp / "voice.m4a"),
        "audio only named mp4": media.make_audio_only(tmp / "voice.mp4"),
    }


@pytest.mark.parametrize(
    "case, words",
    [
        ("zero-length", "empty"),
        ("missing", "not found"),
        ("text as mp4", "not a media file"),
        ("random bytes", ""),
        ("folder without images", "no images"),
        ("empty folder", "no images"),
        ("audio only", "no video stream"),
        ("audio only named mp4", "no video stream"),
    ],
)
def test_bad_input_is_one_line_input_error(tmp_path, case, words):
    path = _bad_inputs(tmp_path)[case]
    with pytest.raises(InputError) as info:
        open_source(str(path))
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    assert words in msg


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
    path = media.make_video(tmp_path / "locked.mp4", frames=3)
    path.chmod(0)
    with pytest.raises(InputError, match="locked.mp4"):
        open_source(str(path))


def test_permission_denied_is_input_error(tmp_path, monkeypatch):
    """Same check as above for root, who can read a chmod 000 file: simulate the refusal."""
    import pipeline.io.sources.probe as probe

    path = media.make_video(tmp_path / "locked.mp4", frames=3)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(probe, "open", refuse, raising=False)
    with pytest.raises(InputError, match=r"cannot read .*locked\.mp4: Permission denied"):
        open_source(str(path))


def test_unsupported_scheme():
    with pytest.raises(InputError, match="ftp://"):
        open_source("ftp://user:pw@host/x.mp4")


# ------------------------------------------------------------------ images


@needs_shared
def test_image_folder_natural_order_and_corrupt_image(tmp_path):
    names = ["obama_1.jpg", "biden_1.jpg", "kit_1.jpg", "rose_1.jpg"]
    folder = media.copy_images(tmp_path / "shots", names, ["img10.jpg", "img2.jpg", "img1.png", "IMG3.jpeg"])
    (folder / "img7.jpg").write_bytes(b"\xff\xd8\xff" + b"broken" * 100)  # JPEG magic, garbage after
    (folder / "notes.txt").write_text("ignored")
    cfg = SourceConfig(image_fps=2.0)
    src, frames = read_all(folder, cfg)
    assert isinstance(src, ImageSource) and src.name == "shots" and not src.live
    expected = ["kit_1.jpg", "biden_1.jpg", "rose_1.jpg", "obama_1.jpg"]  # img1, img2, IMG3, (img7 bad), img10
    assert len(frames) == 4
    for f, name in zip(frames, expected):
        assert np.array_equal(f.image, cv2.imread(str(IMAGES / name))), name
    assert src.skipped == 1 and "img7.jpg" in src.errors[0]
    assert [f.time for f in frames] == [0.0, 0.5, 1.0, 1.5]
    assert src.fps == 2.0 and src.time_base == Fraction(1, 2) and src.frame_count == 5
    first = cv2.imread(str(IMAGES / "kit_1.jpg"))
    assert (src.height, src.width) == first.shape[:2]
    assert len({f.image.shape for f in frames}) > 1  # sizes may differ frame to frame


@needs_shared
def test_image_folder_max_frames_and_single_image(tmp_path):
    folder = media.copy_images(tmp_path / "d", ["alex_1.jpg", "alex_2.jpg", "kit_2.jpg"])
    _, frames = read_all(folder, SourceConfig(max_frames=2))
    assert len(frames) == 2
    # one picture, under a misleading name: probed by content
    odd = tmp_path / "still.mp4"
    shutil.copyfile(IMAGES / "two_people.jpg", odd)
    src, frames = read_all(odd)
    assert len(frames) == 1 and src.frame_count == 1 and src.name == "still.mp4"
    assert np.array_equal(frames[0].image, cv2.imread(str(IMAGES / "two_people.jpg")))


def test_folder_of_only_unreadable_images(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.raises(InputError, match="no readable images"):
        open_source(str(tmp_path))


# ------------------------------------------------------------------ network


def test_unreachable_rtsp_hides_credentials():
    cfg = SourceConfig(open_timeout_s=1.0, read_timeout_s=1.0, reconnect_attempts_at_start=2,
                      reconnect_initial_s=0.2)
    events = []
    t0 = time.monotonic()
    with pytest.raises(InputError) as info:
        open_source("rtsp://user:secret@127.0.0.1:1/cam", cfg, on_event=events.append)
    assert time.monotonic() - t0 < 5
    msg = str(info.value)
    assert msg.startswith("cannot open rtsp://***@127.0.0.1:1/cam after 2 attempts: ")
    assert "secret" not in msg and "user" not in msg and "\n" not in msg
    assert [e.row()["event"] for e in events] == ["reconnect"] and "secret" not in repr(events)


def test_silent_camera_times_out():
    """A server that accepts the connection and never answers: the open timeout must fire."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    cfg = SourceConfig(open_timeout_s=1.0, read_timeout_s=1.0, reconnect_attempts_at_start=1)
    t0 = time.monotonic()
    try:
        with pytest.raises(InputError) as info:
            open_source(f"rtsp://admin:hunter2@127.0.0.1:{port}/live?transport=udp", cfg)
    finally:
        for s in held:
            s.close()
        server.close()
    assert time.monotonic() - t0 < 8
    assert "hunter2" not in str(info.value) and f"127.0.0.1:{port}/live" in str(info.value)


@pytest.mark.parametrize(
    "uri, shown",
    [
        ("rtsp://user:pass@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
        ("rtsps://admin@cam.local/live", "rtsps://***@cam.local/live"),
        ("http://u:p%40ss@host:8080/video.mjpg?x=1", "http://***@host:8080/video.mjpg?x=1"),
        ("rtsp://u:p@ss@host/x", "rtsp://***@host/x"),  # an unescaped @ in the password
        ("rtsp://10.0.0.5/stream?user=a@b", "rtsp://10.0.0.5/stream?user=a@b"),  # @ only in the query
        ("rtsp://10.0.0.5:554/stream1", "rtsp://10.0.0.5:554/stream1"),
        ("/videos/me@home.mp4", "/videos/me@home.mp4"),
        ("clip.mp4", "clip.mp4"),
    ],
)
def test_redact(uri, shown):
    assert redact(uri) == shown


def testnetwork_options():
    from pipeline.io.sources.urls import network_options

    cfg = SourceConfig(open_timeout_s=2.0, read_timeout_s=3.5)
    url, opts = network_options("rtsp://h/cam?transport=udp&channel=1", cfg, None)
    assert url == "rtsp://h/cam?channel=1"
    assert opts == {"rtsp_transport": "udp", "timeout": "3500000"}
    _, opts = network_options("rtsp://h/cam", cfg, None)
    assert opts["rtsp_transport"] == "tcp"
    cfg_udp = SourceConfig(transport="udp")
    assert network_options("rtsp://h/cam", cfg_udp, None)[1]["rtsp_transport"] == "udp"
    assert network_options("rtsp://h/cam?transport=tcp", cfg_udp, None)[1]["rtsp_transport"] == "tcp"
    _, opts = network_options("http://h/cam.mjpg", cfg, {"reconnect": "1"})
    assert opts == {"timeout": "3500000", "reconnect": "1"}


def test_url_credentials_from_environment(monkeypatch):
    monkeypatch.delenv("ENH_CAM_PASS", raising=False)
    monkeypatch.setenv("ENH_CAM_USER", "operator")
    with pytest.raises(InputError) as info:
        open_source("rtsp://${ENH_CAM_USER}:${ENH_CAM_PASS}@127.0.0.1:1/cam")
    assert str(info.value) == "environment variable ENH_CAM_PASS is not set (used in rtsp://***@127.0.0.1:1/cam)"
    # set: the values are used to connect but never shown, not even inside FFmpeg's error text
    monkeypatch.setenv("ENH_CAM_PASS", "s3cr3t-pw")
    monkeypatch.setenv("ENH_CAM_TOKEN", "tok-123456")
    events = []
    cfg = SourceConfig(open_timeout_s=1.0, reconnect_attempts_at_start=2, reconnect_initial_s=0.1)
    with pytest.raises(InputError) as info:
        open_source("rtsp://${ENH_CAM_USER}:${ENH_CAM_PASS}@127.0.0.1:1/cam?t=${ENH_CAM_TOKEN}", cfg,
                    on_event=events.append)
    text = str(info.value) + repr(events)
    assert "cannot open rtsp://***@127.0.0.1:1/cam?t=${ENH_CAM_TOKEN} after 2 attempts" in text
    for secret in ("operator", "s3cr3t-pw", "tok-123456"):
        assert secret not in text


def test_reconnect_backoff_doubles_with_jitter_and_cap():
    from pipeline.io.sources import LiveSource

    src = LiveSource.__new__(LiveSource)  # only the backoff arithmetic, no connection
    src.cfg = SourceConfig(reconnect_initial_s=0.5, reconnect_max_s=4.0)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (40, 4.0)]:
        delays = [src._backoff(attempt) for _ in range(200)]
        assert base * 0.5 <= min(delays) and max(delays) <= base
        assert max(delays) - min(delays) > base * 0.2  # jittered, so cameras don't reconnect in lockstep


def test_scrub_and_userinfo():
    from pipeline.io.sources.urls import scrub, userinfo

    assert userinfo("rtsp://admin:pa:ss@h/x") == ["admin:pa:ss", "admin", "pa:ss"]
    assert userinfo("rtsp://h/x") == []
    assert scrub("401 for admin with pa:ss", ["admin:pa:ss", "admin", "pa:ss", "x"]) == "401 for *** with ***"


def test_files_never_drop(tmp_path):
    """Only live feeds drop frames for a slow consumer; a file waits for it."""
    clip = media.make_video(tmp_path / "c.mp4", frames=20)
    with open_source(str(clip), SourceConfig(live_queue=1)) as src:
        frames = []
        for f in src:
            frames.append(f)
            time.sleep(0.01)
    assert [media.read_index(f.image) for f in frames] == list(range(20)) and src.dropped == 0


# ------------------------------------------------------------------ hostile sizes and damaged intra-only streams


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A valid PNG of `width` x `height` black pixels that is small on disk (zlib squeezes the rows)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = bytes(1 + 3 * width)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_a_picture_over_the_pixel_budget_is_refused_before_decoding(tmp_path):
    huge = _png_declaring(tmp_path / "huge.png", 20000, 20000)
    assert huge.stat().st_size < 2_000_000
    before = _rss()
    with pytest.raises(InputError) as e:
        open_source(str(huge))
    msg = str(e.value)
    assert str(huge) in msg and "20000x20000 px" in msg and "source.max_pixels" in msg and " GB" in msg
    assert "\n" not in msg
    if before is not None:  # never decoded: 20000 x 20000 x 3 bytes would be 1.2 GB
        assert _rss() - before < 300 << 20
    # in a folder it is skipped and counted; the other pictures play
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copy(huge, folder / "a_huge.png")
    cv2.imwrite(str(folder / "b.png"), np.full((64, 64, 3), 90, np.uint8))
    with open_source(str(folder)) as src:
        assert (src.width, src.height) == (64, 64) and len(list(src)) == 1
        assert src.skipped == 1 and "a_huge.png: 20000x20000 px" in src.errors[0]
    # the budget is a setting
    small = _png_declaring(tmp_path / "small.png", 800, 600)
    with pytest.raises(InputError, match="800x600 px"):
        open_source(str(small), SourceConfig(max_pixels=100_000))
    with open_source(str(small), SourceConfig(max_pixels=0)) as src:
        assert (src.width, src.height) == (800, 600)


def test_a_video_over_the_pixel_budget_is_refused(tmp_path):
    clip = media.make_video(tmp_path / "c.mp4", frames=3, size=(640, 480))
    with pytest.raises(InputError) as e:
        open_source(str(clip), SourceConfig(max_pixels=640 * 480 - 1))
    assert "640x480 px" in str(e.value) and str(clip) in str(e.value)
    with open_source(str(clip), SourceConfig(max_pixels=640 * 480)) as src:
        assert len(list(src)) == 3


def _zero_quant_tables(src: Path, dst: Path, start: int = 0) -> Path:
    """Every MJPEG frame from the `start`th on with its quantisation tables zeroed: FFmpeg still outputs a
    flat grey picture for each, and only logs "dqt: 0 quant value"."""
    data = bytearray(src.read_bytes())
    at, n = 0, 0
    while (j := data.find(b"\xff\xd8\xff", at)) >= 0:
        k = data.find(b"\xff\xda", j)
        q = data.find(b"\xff\xdb", j, k)
        while n >= start and q >= 0:
            length = int.from_bytes(data[q + 2:q + 4], "big")
            data[q + 4:q + 2 + length] = bytes(length - 2)
            q = data.find(b"\xff\xdb", q + 2, k)
        at, n = k, n + 1
    dst.write_bytes(data)
    return dst


def test_mjpeg_whose_every_frame_is_damaged_is_refused_with_the_decoders_reason(tmp_path):
    clip = media.make_video(tmp_path / "mj.mkv", frames=24, size=(160, 120), codec="mjpeg")
    broken = _zero_quant_tables(clip, tmp_path / "zeroed.mkv")
    with pytest.raises(InputError) as e:
        open_source(str(broken))
    assert "no decodable video frames" in str(e.value) and "Invalid data" in str(e.value)
    half = _zero_quant_tables(clip, tmp_path / "half.mkv", start=12)  # the first 12 frames are whole
    with open_source(str(half)) as src:
        assert len(list(src)) == 12 and src.skipped == 12 and "undecodable packet" in src.errors[0]
    with open_source(str(clip)) as src:  # the undamaged original: every frame
        assert len(list(src)) == 24 and src.skipped == 0


@pytest.mark.slow
@needs_shared
def test_frames_above_4k_are_a_warning_with_their_memory_and_the_budget_a_refusal(tmp_path):
    from support.paths import MODELS, run_cli

    clip = media.make_video(tmp_path / "wide.mp4", frames=2, size=(4096, 2304))
    proc = run_cli("process", str(clip), "--out", str(tmp_path / "o"), "--models", str(MODELS), "--quiet",
                   "--set", "source.max_frames=1", "--set", "enhance.policy=none", "--set", "output.video=false")
    assert proc.returncode == 0, proc.stderr
    warning = [x for x in proc.stderr.splitlines() if "above 4K" in x]
    assert len(warning) == 1 and "4096x2304" in warning[0] and "GB of memory" in warning[0], proc.stderr
    refused = run_cli("process", str(clip), "--out", str(tmp_path / "r"), "--models", str(MODELS), "--quiet",
                      "--set", f"source.max_pixels={3840 * 2160}")
    err = refused.stderr.strip()
    assert refused.returncode != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "4096x2304 px" in err and "source.max_pixels" in err and not (tmp_path / "r").exists()
