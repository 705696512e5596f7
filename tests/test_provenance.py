"""Provenance: the visible mark, PNG text chunks + XMP + JSON sidecars read back from written files,
and a C2PA manifest signed with a throw-away test certificate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.config import OutputConfig, ProvenanceConfig
from pipeline.core.draw import MARK_TEXT, mark_enhanced
from pipeline.core.errors import ConfigError
from pipeline.io import provenance as prov
from pipeline.io.sinks import TrackWriter
from support.certs import make_test_certificate
from support.tracks import load_photo, make_track

GEN_SHA = "ab" * 32
RUN_INFO = {
    "tool": "enhance 0.1.0",
    "inputs": ["rtsp://user:secret@cam.local/stream1"],
    "settings": {"enhance": {"policy": "best_k", "best_k": 3}, "align": {"entries": [16, 32, 64]}},
    "generator": {"name": "pfsr-v1", "sha256": GEN_SHA, "trained": True, "path": "/x/pfsr.safetensors"},
}


@pytest.fixture(scope="module")
def photo():
    return load_photo()


def _rgb_to_bgr(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))[..., ::-1]


def test_metadata_round_trips_from_written_pngs(tmp_path: Path, photo: np.ndarray) -> None:  # noqa: F811
    track = make_track(photo, tid=4)
    track.source = "cam ☃ <1> & \"2\""  # non-Latin-1 (iTXt) and XML-special characters
    for f in track.faces:
        f.source = track.source
    summary = TrackWriter(tmp_path, OutputConfig(), run_info=RUN_INFO).write(track)
    tdir = tmp_path / "tracks" / "4"
    for f in track.enhanced:
        stem = tdir / f"f{f.frame_index:06d}"
        for kind in ("enhanced", "original", "lr"):
            path = Path(f"{stem}_{kind}.png")
            got = prov.read_tile(path)
            text, rec, xmp, side = got["text"], got["record"], got["xmp"], got["sidecar"]
            ai = kind == "enhanced"
            # short chunks
            assert text["AI-Generated"] == ("true" if ai else "false")
            assert text["Source"] == track.source and text["Frame"] == str(f.frame_index)
            assert text["Track"] == "4" and text["Time"] == f"{f.time:.3f}"
            assert [float(v) for v in text["Box"].split(",")] == pytest.approx(list(f.box), abs=0.06)
            assert text["Source-URI"] == "rtsp://***@cam.local/stream1"  # credentials never written
            assert "secret" not in json.dumps(text)
            # full record
            assert rec["kind"] == kind and rec["ai_generated"] is ai and rec["frame"] == f.frame_index
            assert rec["time"] == pytest.approx(f.time, abs=1e-4) and rec["track"] == 4
            assert rec["box"] == pytest.approx(list(f.box), abs=0.06)
            assert rec["source"] == {"name": track.source, "uri": "rtsp://***@cam.local/stream1"}
            assert rec["settings"] == RUN_INFO["settings"] and rec["entry"] == f.entry
            assert np.asarray(rec["crop_matrix"]) == pytest.approx(f.matrix, abs=1e-4)
            if ai:
                assert rec["generator"] == {"name": "pfsr-v1", "sha256": GEN_SHA, "trained": True}
                assert text["Generator"] == "pfsr-v1" and text["Generator-SHA256"] == GEN_SHA
                assert rec["visible_mark"] is True and text["Visible-Mark"] == MARK_TEXT
                assert xmp["Iptc4xmpExt:DigitalSourceType"] == prov.IPTC_TRAINED
            else:
                assert rec["generator"] is None and "Generator" not in text
                assert xmp["Iptc4xmpExt:DigitalSourceType"] == prov.IPTC_CAPTURE
            # XMP carries the same facts, escaped and parsed back
            assert xmp["enh:AIGenerated"] == ("True" if ai else "False")
            assert xmp["enh:Source"] == track.source and xmp["enh:Frame"] == str(f.frame_index)
            assert xmp["enh:GeneratorSHA256"] == (GEN_SHA if ai else "")
            assert xmp["dc:description"] == rec["description"]
            # the sidecar is the same record plus the file name
            assert side == {**rec, "file": path.name}
            assert f"tracks/4/{path.with_suffix('.json').name}" in summary["files"]
    doc = json.loads((tdir / "track.json").read_text())
    assert doc["generator"]["sha256"] == GEN_SHA and doc["source_uri"] == "rtsp://***@cam.local/stream1"
    assert prov.read_tile(tdir / "best.png")["record"]["generator"]["sha256"] == GEN_SHA


def test_visible_mark_and_unmarked_only_when_asked(tmp_path: Path, photo: np.ndarray) -> None:  # noqa: F811
    track = make_track(photo, tid=5)
    TrackWriter(tmp_path / "a", OutputConfig(), run_info=RUN_INFO).write(track)
    assert not list((tmp_path / "a").rglob("*unmarked*"))
    TrackWriter(tmp_path / "b", OutputConfig(unmarked_tiles=True), run_info=RUN_INFO).write(track)
    for f in track.enhanced:
        stem = tmp_path / "b" / "tracks" / "5" / f"f{f.frame_index:06d}"
        marked = _rgb_to_bgr(Image.open(f"{stem}_enhanced.png")).astype(int)
        plain = _rgb_to_bgr(Image.open(f"{stem}_enhanced_unmarked.png")).astype(int)
        assert np.array_equal(plain, f.enhanced)  # unmarked: exactly the generator's pixels
        assert np.array_equal(marked[:80], f.enhanced[:80])  # the mark keeps off the upper face
        band = marked[-26:, -100:]  # two lines: black boxes with white text
        assert (band.max(axis=2) < 30).mean() > 0.4 and (band.min(axis=2) > 200).mean() > 0.05
        meta = prov.read_tile(Path(f"{stem}_enhanced_unmarked.png"))
        assert meta["text"]["AI-Generated"] == "true" and meta["text"]["Visible-Mark"] == "none"
        assert meta["record"]["visible_mark"] is False and meta["record"]["generator"]["sha256"] == GEN_SHA
    doc = json.loads((tmp_path / "b" / "tracks" / "5" / "track.json").read_text())
    assert "enhanced_unmarked" in doc["observations"][1]["files"]
    tiny = mark_enhanced(np.full((16, 16, 3), 128, np.uint8))  # too small for two lines: no crash
    assert tiny.shape == (16, 16, 3)


def test_c2pa_manifest_signed_with_test_certificate(tmp_path: Path, photo: np.ndarray) -> None:  # noqa: F811
    pytest.importorskip("c2pa", reason="c2pa-python not installed (optional: pip install c2pa-python)")
    cert, key = make_test_certificate(tmp_path / "certs")
    signer = prov.signer_from_config(ProvenanceConfig(c2pa_cert=str(cert), c2pa_key=str(key)))
    track = make_track(photo, tid=6)
    TrackWriter(tmp_path / "run", OutputConfig(), run_info=RUN_INFO, signer=signer).write(track)
    f = track.enhanced[0]
    stem = tmp_path / "run" / "tracks" / "6" / f"f{f.frame_index:06d}"
    got = prov.read_c2pa(Path(f"{stem}_enhanced.png"))
    assert got is not None and got["state"] in ("Valid", "Trusted"), got
    m = got["manifest"]
    assert m["signature_info"]["common_name"] == "Enhance test signer" and "thumbnail" not in m
    labels = {a["label"]: a["data"] for a in m["assertions"]}
    action = next(v for k, v in labels.items() if k.startswith("c2pa.actions"))["actions"][0]
    assert action["action"] == "c2pa.created" and action["digitalSourceType"] == prov.IPTC_TRAINED
    assert GEN_SHA in action["softwareAgent"]["name"]
    ours = labels["org.enhance.provenance"]
    assert ours["frame"] == f.frame_index and ours["generator"]["sha256"] == GEN_SHA
    # the PNG text chunks and the pixels survive signing
    meta = prov.read_tile(Path(f"{stem}_enhanced.png"))
    assert meta["record"]["frame"] == f.frame_index and meta["xmp"]["enh:GeneratorSHA256"] == GEN_SHA
    assert _rgb_to_bgr(Image.open(f"{stem}_enhanced.png")).shape == (128, 128, 3)
    assert prov.read_c2pa(Path(f"{stem}_original.png")) is None  # source pixels are not claimed as created
    # tampering with the pixels breaks the signature
    img = Image.open(f"{stem}_enhanced.png")
    raw = bytearray(Path(f"{stem}_enhanced.png").read_bytes())
    idat = raw.find(b"IDAT")
    raw[idat + 20] ^= 0xFF
    bad = tmp_path / "tampered.png"
    bad.write_bytes(bytes(raw))
    state = prov.read_c2pa(bad)
    assert state is not None and state["state"] == "Invalid", state and state["results"]
    del img


def test_c2pa_config_errors(tmp_path: Path) -> None:
    assert prov.signer_from_config(ProvenanceConfig()) is None
    with pytest.raises(ConfigError, match="together"):
        prov.signer_from_config(ProvenanceConfig(c2pa_cert="x.pem"))
    pytest.importorskip("c2pa")
    with pytest.raises(ConfigError, match="not found"):
        prov.signer_from_config(ProvenanceConfig(c2pa_cert=str(tmp_path / "no.pem"), c2pa_key=str(tmp_path / "k")))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot make a C2PA signer"):
        prov.signer_from_config(ProvenanceConfig(c2pa_cert=str(tmp_path / "junk.pem"),
                                                 c2pa_key=str(tmp_path / "junk.pem")))


def test_one_observation_projected_into_every_format(tmp_path: Path, photo: np.ndarray) -> None:  # noqa: F811
    """track.json, faces.csv, detections.jsonl, each tile's record and the API's sv.Detections carry the
    same values for the same face: one record per face, one table of names, one rounding rule."""
    import csv

    from pipeline.api import to_detections
    from pipeline.io.records import FIELDS, FORMATS, PLACES, Observation, name_in, rounded
    from pipeline.io.sinks import Manifest

    track = make_track(photo, tid=6, n=4, enhanced_frames=(1, 3))
    for f in track.faces:
        f.source, f.time, f.score = "cam", f.time + 1 / 3, 0.812345678  # values that need rounding
        f.confidence = 0.654321 if f.enhanced is not None else None
    m = Manifest(tmp_path, {"inputs": ["cam.mp4"]})
    written = TrackWriter(tmp_path, OutputConfig(), run_info=RUN_INFO).write_track(track)
    m.add_rows(written.rows)
    m.close()
    doc = json.loads((tmp_path / "tracks" / "6" / "track.json").read_text())
    csv_rows = {int(r["frame"]): r for r in csv.DictReader((tmp_path / "faces.csv").open())}
    jsonl = {r["frame"]: r for r in map(json.loads, (tmp_path / "detections.jsonl").read_text().splitlines())}
    det = to_detections(track.faces)
    for i, f in enumerate(track.faces):
        o = Observation.of(f, f.enhanced is not None)
        (saved,) = [x for x in doc["observations"] if x["frame"] == f.frame_index]
        assert saved == json.loads(json.dumps(o.to_json())) | {"files": saved["files"]}
        assert saved["time"] == rounded("time", f.time) == round(f.time, PLACES["time"])
        assert saved["score"] == 0.8123 and saved["box"] == [round(float(v), 1) for v in f.box]
        row, line = csv_rows[f.frame_index], jsonl[f.frame_index]
        for name in ("score", "time", "frame", "quality", "entry", "track"):
            key = name_in("faces.csv", name)
            assert line[key] == getattr(o, name) and float(row[key]) == float(getattr(o, name)), name
        assert json.loads(row["keypoints"]) == line["keypoints"] == o.kps
        assert [line[k] for k in ("x_min", "y_min", "x_max", "y_max")] == o.box
        assert det.confidence[i] == np.float32(o.score) and det.xyxy[i].tolist() == pytest.approx(o.box)
        assert det.data["time"][i] == o.time and det.tracker_id[i] == o.track == 6
        if f.enhanced is not None:
            rec = prov.read_tile(tmp_path / "tracks" / "6" / f"f{f.frame_index:06d}_enhanced.png")["record"]
            assert (rec["time"], rec["box"], rec["kps"], rec["crop_matrix"]) == (o.time, o.box, o.kps, o.matrix)
            assert rec["confidence"] == o.confidence == saved["confidence"] == 0.6543
            assert det.data["enhanced_confidence"][i] == np.float32(0.6543)
    assert set(FIELDS) >= {"box", "score", "time", "kps", "matrix", "confidence"} and len(FORMATS) == 4
    assert all(len(names) == len(FORMATS) for names in FIELDS.values())
