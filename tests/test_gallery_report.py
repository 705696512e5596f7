"""Galleries and report: selection and de-duplication on a real run, people clustering on the photos,
report.html in a real headless Chromium, hostile strings escaped, `gallery` regenerating from files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.cli import build_parser
from pipeline.core.config import AlignConfig, OutputConfig, load_config
from pipeline.core.errors import ConfigError, EnhanceError
from pipeline.core.types import Face, Track
from pipeline.io.sinks import TrackWriter
from pipeline.report import analyse, write_report
from pipeline.report import people as ppl
from pipeline.report.sheet import select, ssim
from pipeline.stages.align import Aligner
from support.browser import chrome, console_errors
from support.paths import IMAGES, MODELS, VIDEO, require, run_cli

pytestmark = pytest.mark.slow  # end-to-end runs of real video and servers: the full suite, not the fast lane

OFFICE = VIDEO / "office_fisheye_cctv.mp4"
PHOTOS = ["obama_1", "obama_2", "obama_3", "obama_4", "obama_small", "biden_1", "biden_2",
          "kit_1", "kit_2", "kit_3", "rose_1", "rose_2", "alex_1", "alex_2"]
HOSTILE = "<script>alert(1)</script>\"'&<img src=x onerror=alert(2)>"


def settings(*sets: str):
    """The run's config with some `--set`s, through the one loader."""
    return load_config(None, list(sets))


def person_of(name: str) -> str:
    return name.split("_")[0]


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def photo_faces(detector) -> dict[str, Face]:
    """The largest face of each photo, aligned the way the runner aligns video faces."""
    out = {}
    for name in PHOTOS:
        path = next(IMAGES.glob(name + ".*"), None)
        if path is None:
            pytest.skip(f"photo missing: {name}")
        img = cv2.imread(str(path))
        face = max(detector(img), key=lambda f: f.size)
        Aligner(AlignConfig())(img, face)
        out[name] = face
    return out


def write_photo_run(run_dir: Path, faces: dict[str, Face], source: str = "photos", frames: dict[str, int] | None = None,
                    inputs: list[str] | None = None) -> dict[str, int]:
    """One track per photo (track ids 1..n), written by the real TrackWriter, plus a minimal manifest."""
    ids = {}
    for i, (name, f) in enumerate(faces.items(), start=1):
        frame = (frames or {}).get(name, i * 10)
        g = Face(box=f.box.copy(), kps=f.kps.copy(), score=f.score, frame_index=frame, time=frame / 25.0,
                 source=source, track_id=i, crop=f.crop.copy(), lr=f.lr.copy(), entry=f.entry, matrix=f.matrix,
                 quality=f.quality)
        g.enhanced = cv2.resize(g.lr, (128, 128), interpolation=cv2.INTER_CUBIC)  # stand-in for the generator
        TrackWriter(run_dir, OutputConfig(), run_info={"inputs": inputs or [source]}).write(
            Track(i, source, faces=[g], candidates=[g]))
        ids[name] = i
    (run_dir / "manifest.json").write_text(json.dumps({"status": "complete", "inputs": inputs or [source],
                                                       "settings": {}, "stats": {"frames": 1}}))
    return ids


@pytest.fixture(scope="module")
def office_run(tmp_path_factory) -> Path:
    require(OFFICE, MODELS)
    out = tmp_path_factory.mktemp("office_gallery")
    proc = run_cli("process", str(OFFICE), "--out", str(out), "--models", str(MODELS), "--quiet", timeout=1200)
    assert proc.returncode == 0, proc.stderr
    return out


IMAGES_JS = "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);"


def open_report(drv, path: Path) -> None:
    drv.get(path.resolve().as_uri())
    drv.execute_script("return document.readyState")


def all_images_loaded(drv) -> list:
    from selenium.webdriver.support.ui import WebDriverWait

    drv.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    WebDriverWait(drv, 20).until(lambda d: d.execute_script(
        "return Array.from(document.images).every(i => i.complete)"))
    return drv.execute_script(IMAGES_JS)


# ------------------------------------------------------------------------------ clustering


def test_cluster_unit() -> None:
    a = np.array([1, 0, 0], np.float32)
    b = np.array([0.8, 0.6, 0], np.float32)  # cos(a, b) = 0.8
    c = np.array([0, 0, 1], np.float32)
    got = ppl.cluster({"a": a, "b": b, "c": c, "d": None}, threshold=0.7)
    assert [p.members for p in got.people] == [["a", "b"], ["c"], ["d"]]
    assert got.people[0].merges[0].similarity == pytest.approx(0.8)
    assert got.nearest_outside["c"][1] == pytest.approx(0.0, abs=1e-6) and got.nearest_outside["d"] is None
    assert [p.members for p in ppl.cluster({"a": a, "b": b}, threshold=0.81).people] == [["a"], ["b"]]
    apart = ppl.cluster({"a": a, "b": b}, threshold=0.7, cannot_link=[("a", "b")])
    assert [p.members for p in apart.people] == [["a"], ["b"]] and apart.nearest_person[0] == (1, 0.8, True, 0.7)
    # faces under SMALL_FACE_PX need SMALL_FACE_MARGIN more: 0.8 is not enough against 0.7 + 0.2 ...
    small = ppl.cluster({"a": a, "b": b}, threshold=0.7, small=["b"])
    assert [p.members for p in small.people] == [["a"], ["b"]] and small.nearest_person[0] == (1, 0.8, False, 0.9)
    # ... and a group's mean counts each pair's own need: a+b (small b) joined c only when close enough
    near = np.array([0.95, 0.3122, 0], np.float32)  # cos(a, near) = 0.95
    got = ppl.cluster({"a": a, "n": near / np.linalg.norm(near), "b": b}, threshold=0.7, small=["b"])
    assert [p.members for p in got.people] == [["a", "n"], ["b"]]
    assert got.people[0].merges[0].needed == pytest.approx(0.7)
    assert ppl.cooccurring({1: ("s", {1, 2}), 2: ("s", {2, 3}), 3: ("t", {2}), 4: ("s", {5})}) == [(1, 2)]


def test_photos_cluster_by_person_through_the_saved_tiles(tmp_path: Path, photo_faces) -> None:
    ids = write_photo_run(tmp_path, photo_faces)
    a = analyse(tmp_path, settings(), MODELS)
    name_of = {v: k for k, v in ids.items()}
    groups = sorted(sorted(person_of(name_of[k[1]]) + ":" + name_of[k[1]] for k in p.members) for _, p in a.persons)
    expected = sorted(sorted(f"{person_of(n)}:{n}" for n in PHOTOS if person_of(n) == who)
                      for who in ("obama", "biden", "kit", "rose", "alex"))
    assert groups == expected  # same person together, different people apart
    for _, p in a.persons:  # every join is recorded with its similarity, all at or above the threshold
        assert len(p.merges) == len(p.members) - 1
        assert all(m.similarity >= a.cfg.people.threshold for m in p.merges)
    # embeddings of the re-warped 128 original equal insightface's own 112 crop of the source
    t = a.tracks[0]
    assert t.n_embedded == 1 and t.embedding is not None
    write_report(tmp_path, settings(), MODELS)
    doc = json.loads((tmp_path / "people.json").read_text())
    assert len(doc["people"]) == 5 and doc["model"]["name"] == settings().people.model


def test_same_frame_is_never_one_person(tmp_path: Path, photo_faces) -> None:
    faces = {n: photo_faces[n] for n in ("obama_1", "obama_2", "biden_1")}
    write_photo_run(tmp_path, faces, frames={"obama_1": 7, "obama_2": 7, "biden_1": 9})
    a = analyse(tmp_path, settings(), MODELS)
    assert len(a.persons) == 3  # obama_1 and obama_2 share frame 7: two faces at once
    html = (write_report(tmp_path, settings(), MODELS)).read_text()
    assert "same frame" in html


def test_threshold_and_missing_model(tmp_path: Path, photo_faces) -> None:
    write_photo_run(tmp_path, {n: photo_faces[n] for n in ("obama_1", "obama_2")})
    assert len(analyse(tmp_path, settings("people.threshold=0.99"), MODELS).persons) == 2
    assert len(analyse(tmp_path, settings("people.threshold=0.5"), MODELS).persons) == 1
    a = analyse(tmp_path, settings("people.model=no_such_model.onnx"), tmp_path)
    assert len(a.persons) == 2 and "not grouped" in a.note
    with pytest.raises(ConfigError, match="people.threshold"):  # a bad saved setting: the loader says which
        (tmp_path / "manifest.json").write_text(json.dumps({"settings": {"people": {"threshold": 1.5}}}))
        analyse(tmp_path, None, MODELS)
    with pytest.raises(ConfigError, match="gallery.dedupe"):
        settings("gallery.dedupe=x")
    with pytest.raises(EnhanceError, match="no finished run"):
        write_report(tmp_path / "tracks" / "1", settings(), MODELS)


def test_people_across_runs_in_one_folder(tmp_path: Path, photo_faces) -> None:
    write_photo_run(tmp_path / "cam_a", {"obama_1": photo_faces["obama_1"], "kit_1": photo_faces["kit_1"]}, "cam A")
    write_photo_run(tmp_path / "cam_b", {"obama_2": photo_faces["obama_2"]}, "cam B")
    a = analyse(tmp_path, settings(), MODELS)
    groups = sorted(sorted(k for k in p.members) for _, p in a.persons)
    assert groups == [[("cam_a", 1), ("cam_b", 1)], [("cam_a", 2)]]
    html = write_report(tmp_path, settings(), MODELS).read_text()
    assert 'src="cam_b/tracks/1/' in html and "cam A" in html and "cam B" in html


# ------------------------------------------------------------------------------ selection


def test_select_dedupe_unit() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (16, 16, 3), np.uint8)
    other = rng.integers(0, 255, (16, 16, 3), np.uint8)
    items = [("a", 0.9, base), ("a2", 0.8, base.copy()), ("b", 0.7, other), ("c", 0.6, 255 - base)]
    chosen, dupes = select(items, 2, lambda x: x[1], lambda x: x[2], dedupe=0.9)
    assert [c[0] for c in chosen] == ["a", "b"] and [d[0] for d in dupes] == ["a2"]
    chosen, dupes = select(items, 3, lambda x: x[1], lambda x: x[2], dedupe=1.0)
    assert [c[0] for c in chosen] == ["a", "a2", "b"] and not dupes
    assert ssim(base, base) == pytest.approx(1.0) and ssim(base, other) < 0.5


def test_office_gallery_selection_and_dedupe(office_run: Path) -> None:
    a = analyse(office_run, settings("gallery.dedupe=0.9", "output.gallery_per_track=3"), MODELS)
    manifest = json.loads((office_run / "manifest.json").read_text())
    assert len(a.tracks) == manifest["stats"]["tracks"] > 0
    hidden = 0
    for t in a.tracks:
        assert 1 <= len(t.chosen) <= 3
        q = [o.quality for o in t.chosen]
        assert q == sorted(q, reverse=True)
        real = [cv2.imread(str(office_run / o.files["lr"])) for o in t.chosen]
        for i in range(len(real)):
            for j in range(i + 1, len(real)):
                assert ssim(real[i], real[j]) < 0.9  # no near-duplicates shown
        for d in t.dupes:  # each hidden one duplicates a better one that is shown
            img = cv2.imread(str(office_run / d.files["lr"]))
            assert any(ssim(img, r) >= 0.9 and o.quality >= d.quality for o, r in zip(t.chosen, real))
        # the best observation by quality is always shown
        assert t.chosen[0].quality == max(o.quality for o in t.tiles)
        hidden += len(t.dupes)
        assert all(o.files.get("enhanced") for o in t.chosen)
    assert hidden >= 1  # this clip has people standing still: near-identical crops exist
    off = analyse(office_run, settings("gallery.dedupe=1.0", "output.gallery_per_track=3"), MODELS)
    assert all(not t.dupes and len(t.chosen) == min(3, len(t.tiles)) for t in off.tracks)
    # people: every track is in exactly one person; embeddings came from original crops
    members = [k for _, p in a.persons for k in p.members]
    assert sorted(members) == sorted(t.key for t in a.tracks)
    assert all(t.n_embedded == len([o for o in t.tiles if "original" in o.files]) for t in a.tracks)


def test_gallery_command_regenerates_without_reprocessing(office_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(office_run, out)
    tiles = {p: p.stat().st_mtime_ns for p in (out / "tracks").rglob("*")}
    video = (out / "annotated.mp4").stat().st_mtime_ns
    parser = build_parser()
    args = parser.parse_args(["gallery", str(out), "--models", str(MODELS), "--set", "people.threshold=0.7",
                              "--set", "gallery.dedupe=0.95", "--quiet"])
    assert args.func(args) == 0
    for name in ("report.html", "gallery.png", "people.json"):
        assert (out / name).stat().st_size > 0
    doc = json.loads((out / "people.json").read_text())
    assert doc["threshold"] == 0.7
    assert {p: p.stat().st_mtime_ns for p in (out / "tracks").rglob("*")} == tiles  # nothing re-made
    assert (out / "annotated.mp4").stat().st_mtime_ns == video
    bad = parser.parse_args(["gallery", str(tmp_path / "nothing")])
    with pytest.raises(EnhanceError):
        bad.func(bad)


# ------------------------------------------------------------------------------ browser


def test_report_in_headless_chromium(office_run: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    path = write_report(office_run, None, MODELS)
    html = path.read_text()
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html  # offline, static
    drv = chrome(tmp_path)
    try:
        open_report(drv, path)
        first = drv.find_element(By.CSS_SELECTOR, "details.track")
        obs = first.find_elements(By.CSS_SELECTOR, "figure.obs")
        assert obs and not obs[0].is_displayed() and first.get_attribute("open") is None
        first.find_element(By.CSS_SELECTOR, "summary img").click()  # a click on the track …
        assert first.get_attribute("open") is not None and obs[0].is_displayed()  # … opens its observations
        assert obs[0].find_element(By.CSS_SELECTOR, "img.ai").is_displayed()
        link = obs[0].find_element(By.PARTIAL_LINK_TEXT, "video at")
        assert "annotated.mp4#t=" in link.get_attribute("href")
        shot = tmp_path / "report.png"
        drv.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000 and cv2.imread(str(shot)).std() > 10
        images = all_images_loaded(drv)
        n_tiles = sum(len(t.chosen) for t in analyse(office_run, None, MODELS).tracks)
        assert len(images) >= 2 * n_tiles and all(ok for _, ok in images), [s for s, ok in images if not ok]
        assert console_errors(drv) == []
    finally:
        drv.quit()


def test_hostile_strings_are_escaped(tmp_path: Path, photo_faces) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    run = tmp_path / "run"
    write_photo_run(run, {"obama_1": photo_faces["obama_1"]}, source=HOSTILE, inputs=[HOSTILE + ".mp4"])
    # a tile whose file name itself is hostile, listed in track.json
    tdir = run / "tracks" / "1"
    doc = json.loads((tdir / "track.json").read_text())
    files = doc["observations"][0]["files"]
    evil = "<script>alert(3)<!--#?&.png"
    shutil.copy(tdir / files["lr"], tdir / evil)
    files["lr"] = evil
    files["original"] = "../../../etc/passwd"  # not a plain file name: ignored
    (tdir / "track.json").write_text(json.dumps(doc))
    path = write_report(run, settings(), MODELS)
    html = path.read_text()
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "%3Cscript%3Ealert%283%29%3C%21--%23%3F%26.png" in html  # the link is percent-encoded
    assert "passwd" not in html
    drv = chrome(tmp_path)
    try:
        open_report(drv, path)
        with pytest.raises(NoAlertPresentException):
            drv.switch_to.alert.text  # noqa: B018
        assert drv.execute_script("return document.scripts.length") == 0
        assert drv.execute_script("return document.querySelectorAll('[onerror]').length") == 0
        assert HOSTILE in drv.execute_script("return document.body.innerText")  # shown as text
        images = all_images_loaded(drv)
        assert any("alert%283%29" in src and ok for src, ok in images), images  # the odd file name loads
        assert all(ok for _, ok in images)
        assert console_errors(drv) == []
    finally:
        drv.quit()


def test_report_without_tiles_or_faces(tmp_path: Path, photo_faces) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.json").write_text(json.dumps({"status": "complete", "inputs": ["x.mp4"], "tracks": []}))
    html = write_report(empty, None, MODELS).read_text()
    assert "No faces were tracked." in html and (empty / "gallery.png").is_file()
    assert json.loads((empty / "people.json").read_text())["people"] == []

    notiles = tmp_path / "notiles"  # enhance.policy none / output.tiles false: track.json only
    f = photo_faces["kit_1"]
    for tid in (1, 2):
        g = Face(box=f.box, kps=f.kps, score=f.score, frame_index=tid, time=tid / 25, source="cam", track_id=tid)
        TrackWriter(notiles, OutputConfig(tiles=False)).write(Track(tid, "cam", faces=[g]))
    (notiles / "tracks" / "3").mkdir()
    (notiles / "tracks" / "3" / "track.json").write_text("{not json")
    a = analyse(notiles, settings(), MODELS)
    assert len(a.persons) == 2 and all(t.embedding is None and not t.chosen for t in a.tracks)
    assert any("tracks/3/track.json" in p for p in a.problems)
    html = write_report(notiles, settings(), MODELS).read_text()
    assert "No tiles saved for this track." in html and "no original crop" in html and "unreadable" in html


def test_faces_the_camera_resolves_are_shown_as_captured(tmp_path):
    """Photos of large faces: nothing is synthesized (every observation `resolved`), and every output shows
    the same crop of the track as captured: its original tile in track.json and the manifest, the same
    pixels in gallery.png's row, and report.html counts it shown and groups it by it (an embedding)."""
    from pipeline.report.sheet import BG, LABEL_W, ROW_HEAD, SECTION_H, TILE

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):  # one face seen three times: a confirmed track
        shutil.copy(IMAGES / "obama_1.jpg", photos / f"{i}.jpg")
    out = tmp_path / "o"
    proc = run_cli("process", str(photos), "--out", str(out), "--models", str(MODELS), "--quiet")
    assert proc.returncode == 0, proc.stderr
    (tj,) = (out / "tracks").glob("*/track.json")
    doc = json.loads(tj.read_text())
    assert doc["n_enhanced"] == 0 and all(o["resolved"] and not o["enhanced"] for o in doc["observations"])
    assert not list(out.rglob("*_enhanced*.png")) and (tj.parent / "best.png").is_file()
    sheet = cv2.imread(str(out / "gallery.png"))
    rows = np.where((sheet[:, 4] != BG).any(1))[0]  # the person bar's first line
    top = rows[rows > 40][0] + SECTION_H + ROW_HEAD
    crop = sheet[top : top + TILE, LABEL_W : LABEL_W + TILE]
    assert (np.abs(crop.astype(int) - BG).sum(2) > 30).mean() > 0.5  # a face there, not "no crop kept" on the background

    # the same crop everywhere: track.json lists the original tile, the manifest the file, the gallery draws it
    shown = [o for o in doc["observations"] if o["files"]]
    assert len(shown) == 1 and set(shown[0]["files"]) == {"original"}
    tile = cv2.imread(str(tj.parent / shown[0]["files"]["original"]))
    assert tile.shape == (TILE, TILE, 3) and np.abs(tile.astype(int) - crop).mean() < 2
    manifest = json.loads((out / "manifest.json").read_text())
    (summary,) = manifest["tracks"]
    assert f"tracks/{doc['track_id']}/{shown[0]['files']['original']}" in summary["files"]
    assert summary["n_observations"] == doc["n_observations"] and summary["n_enhanced"] == doc["n_enhanced"] == 0
    html = (out / "report.html").read_text()
    assert "1 shown" in html and "0 shown" not in html and "no original crop" not in html
    people = json.loads((out / "people.json").read_text())
    (track,) = people["people"][0]["tracks"]
    assert track["embedded_crops"] == 1 and track["shown_frames"] == [shown[0]["frame"]]
