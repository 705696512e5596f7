"""The catalogue (pipeline.catalog): schema and migrations, ingest from real runs on SQLite and a real
PostgreSQL, the live sink, a run killed with SIGKILL, retention and erasure, and search by face."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from support.paths import HEADS, MODELS, ROOT, VIDEO, require, run_cli

pytest.importorskip("sqlalchemy", reason="needs the catalog extra (pip install 'enhance-faces[catalog]')")
import sqlalchemy as sa  # noqa: E402

from pipeline.catalog import db, query, schema  # noqa: E402
from pipeline.catalog.folders import add_folder  # noqa: E402
from pipeline.catalog.ingest import Writer  # noqa: E402
from support import postgres  # noqa: E402

pytestmark = pytest.mark.slow  # end-to-end runs of real video and servers: the full suite, not the fast lane

OFFICE = VIDEO / "office_fisheye_cctv.mp4"
ENV = {"ENHANCE_MODELS": str(MODELS)}


@pytest.fixture(scope="module")
def office_run(tmp_path_factory) -> Path:
    """A real run of the office clip's first 60 frames (no catalogue)."""
    require(OFFICE, MODELS)
    out = tmp_path_factory.mktemp("office") / "run"
    proc = run_cli("process", str(OFFICE), "--out", str(out), "--set", "source.max_frames=60", "--quiet", env=ENV)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def pg():
    ok, why = postgres.available()
    if not ok:
        pytest.skip(why)
    with postgres.Postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "catalog.sqlite")
    server = request.getfixturevalue("pg")
    name = f"t{os.getpid()}_{time.monotonic_ns()}"
    eng = sa.create_engine(db.resolve(server.url())[0], isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    eng.dispose()
    return server.url().replace("/postgres", f"/{name}")


def consistent(eng) -> None:
    """Every finished track whole: as many observations as it says, tiles and embeddings of its own rows."""
    with eng.connect() as conn:
        rows = conn.execute(sa.select(schema.tracks.c.id, schema.tracks.c.n_observations, schema.tracks.c.open)).all()
        for tid, n, is_open in rows:
            got = conn.execute(sa.select(sa.func.count()).where(schema.observations.c.track_id == tid)).scalar_one()
            assert got == (0 if is_open else n), (tid, got, n)
        orphan = conn.execute(sa.select(sa.func.count()).select_from(schema.tiles).where(
            ~sa.exists().where(schema.tracks.c.id == schema.tiles.c.track_id))).scalar_one()
        assert orphan == 0


def test_migrations_make_the_schema_the_code_declares(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    eng = db.engine(str(tmp_path / "c.sqlite"))
    with eng.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # expression indexes cannot be reflected: compared by name below
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
        made = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'").scalars())
    assert diff == []
    declared = {i.name for t in schema.metadata.tables.values() for i in t.indexes}
    assert declared <= made, declared - made
    assert db.revision(eng) == db.HEAD


def test_a_catalogue_of_the_previous_revision_is_upgraded_keeping_its_tracks(tmp_path, office_run):
    path = tmp_path / "old.sqlite"
    old = sa.create_engine(f"sqlite:///{path}")
    db.migrate(old, path, to="0001")
    assert db.revision(old) == "0001"
    with old.begin() as conn:  # what a catalogue of revision 0001 held: no embeddings, no audit table
        conn.exec_driver_sql("INSERT INTO cameras (id, name) VALUES (1, 'cam')")
        conn.exec_driver_sql("INSERT INTO recordings (id, camera_id, input, size, mtime) VALUES (1, 1, 'a.mp4', 5, 1.0)")
        conn.exec_driver_sql("INSERT INTO runs (id, recording_id, folder, started, identity, settings_sha256, "
                             "weights_sha256, version, status, started_at, added_at) VALUES "
                             "(1, 1, '/x', 's', 'i', 'h', 'w', '0.1', 'complete', 0, 0)")
        conn.exec_driver_sql("INSERT INTO tracks (id, run_id, camera_id, track_no, first_at, last_at, n_observations, "
                             "n_enhanced, open) VALUES (1, 1, 1, 7, 10, 20, 0, 0, 0)")
        assert "audit" not in sa.inspect(conn).get_table_names()
    old.dispose()
    eng = db.engine(str(path))  # opening upgrades it
    assert db.revision(eng) == db.HEAD
    with eng.connect() as conn:
        assert conn.execute(sa.select(schema.tracks.c.track_no)).scalars().all() == [7]
    writer = Writer(eng, None)
    assert add_folder(writer, office_run).tracks == 2  # and it takes new runs in the new shape
    consistent(eng)


def test_add_a_real_run_twice_adds_it_once(catalog_url, office_run):
    from pipeline.catalog.embed import FaceEmbedder
    from pipeline.core.config import load_config

    eng = db.engine(catalog_url)
    writer = Writer(eng, FaceEmbedder(load_config(None, []), MODELS))
    first = add_folder(writer, office_run)
    again = add_folder(writer, office_run)
    assert (first.runs, first.tracks, first.known) == (1, 2, 0)
    assert (again.tracks, again.known) == (0, 2)
    manifest = json.loads((office_run / "manifest.json").read_text())
    with eng.connect() as conn:
        tracks = conn.execute(sa.select(schema.tracks)).mappings().all()
        run = conn.execute(sa.select(schema.runs)).mappings().one()
        n_obs = conn.execute(sa.select(sa.func.count()).select_from(schema.observations)).scalar_one()
        kinds = set(conn.execute(sa.select(schema.tiles.c.kind)).scalars())
        prov = conn.execute(sa.select(schema.tiles.c.provenance).where(schema.tiles.c.kind == "enhanced")).scalars().first()
    assert n_obs == sum(t["n_observations"] for t in manifest["tracks"])
    assert {t["track_no"] for t in tracks} == {t["id"] for t in manifest["tracks"]}
    assert all(t["embedding"] is not None and len(t["embedding"]) == 512 for t in tracks)
    assert {t["person"] for t in tracks} <= {"P1", "P2"} and all(t["person"] for t in tracks)
    assert {"original", "lr", "enhanced", "best"} <= kinds
    assert "AI" in json.dumps(prov)  # the enhanced tile's provenance record came along
    assert run["status"] == "complete" and run["weights_sha256"] == manifest["generator"]["sha256"]
    assert Path(run["folder"]) == office_run.resolve()
    consistent(eng)
    eng.dispose()


def test_password_comes_from_the_environment_and_is_never_shown(pg, capsys):
    proc = run_cli("catalog", "stats", "--catalog", pg.url().replace("${" + postgres.PASSWORD_VAR + "}", "not-it-123"),
                   env={postgres.PASSWORD_VAR: pg.password})
    assert proc.returncode != 0 and "not-it-123" not in proc.stderr and "***" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    ok = run_cli("catalog", "stats", "--catalog", pg.url(), "--json", env={postgres.PASSWORD_VAR: pg.password})
    assert ok.returncode == 0, ok.stderr
    assert pg.password not in ok.stdout and json.loads(ok.stdout)["counts"]["tracks"] >= 0


def test_process_with_catalog_writes_tracks_as_it_goes_then_prune_and_forget(catalog_url, tmp_path):
    require(OFFICE, MODELS)
    out = tmp_path / "run"
    env = {**ENV, postgres.PASSWORD_VAR: os.environ.get(postgres.PASSWORD_VAR, "")}
    proc = run_cli("process", str(OFFICE), "--out", str(out), "--set", "source.max_frames=60", "--quiet",
                   "--catalog", catalog_url, env=env)
    assert proc.returncode == 0, proc.stderr
    eng = db.engine(catalog_url)
    doc = query.stats(eng)
    assert doc["counts"]["tracks"] == 2 and doc["counts"]["runs"] == 1 and doc["counts"]["embeddings"] > 0
    with eng.connect() as conn:
        assert conn.execute(sa.select(schema.runs.c.status)).scalar_one() == "complete"
        assert all(conn.execute(sa.select(schema.tracks.c.person)).scalars())  # the run's people grouping
    assert add_folder(Writer(eng, None), out).tracks == 0  # the sink wrote them all already
    consistent(eng)

    search = run_cli("search", "--track", "1", "--catalog", catalog_url, "--json", env=env)
    assert search.returncode == 0, search.stderr
    assert [h["track"] for h in json.loads(search.stdout)["results"]] == [2]
    assert run_cli("catalog", "prune", "--older-than", "30d", "--catalog", catalog_url, env=env).returncode == 0
    assert query.stats(eng)["counts"]["tracks"] == 2  # nothing that old
    with eng.connect() as conn:
        tno = conn.execute(sa.select(schema.tracks.c.track_no).where(schema.tracks.c.id == 1)).scalar_one()
    assert (out / "tracks" / str(tno)).is_dir()
    forgot = run_cli("catalog", "forget", "--track", "1", "--delete-files", "--catalog", catalog_url, env=env)
    assert forgot.returncode == 0, forgot.stderr
    with eng.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.tracks)).scalar_one() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.audit)).scalar_one() == 1
    assert not (out / "tracks" / str(tno)).exists()
    missing = run_cli("catalog", "forget", "--track", "99", "--catalog", catalog_url, env=env)
    assert missing.returncode == 2 and "no track 99" in missing.stderr
    assert query.prune(eng, 0.0, now=time.time() + 10)["runs"] == 1
    assert query.stats(eng)["counts"] == {**query.stats(eng)["counts"], "tracks": 0, "observations": 0, "runs": 0,
                                          "cameras": 0, "tiles": 0, "embeddings": 0}
    eng.dispose()


def test_kill_9_mid_run_leaves_a_consistent_catalogue(tmp_path):
    require(OFFICE, MODELS)
    url = tmp_path / "catalog.sqlite"
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "process", str(OFFICE), "--out", str(out),
                             "--quiet", "--catalog", str(url), "--set", "output.video=false"],
                            cwd=ROOT, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if url.exists():
                with sqlite3.connect(url, timeout=30) as c:
                    try:
                        if c.execute("SELECT count(*) FROM tracks WHERE NOT open").fetchone()[0] >= 1:
                            break
                    except sqlite3.OperationalError:  # the schema is being made
                        pass
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before its first track reached the catalogue"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    with sqlite3.connect(url) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    eng = db.engine(str(url))
    consistent(eng)

    def rows() -> dict[int, bool]:
        with eng.connect() as conn:
            return dict(conn.execute(sa.select(schema.tracks.c.track_no, schema.tracks.c.open)).all())

    with eng.connect() as conn:
        assert conn.execute(sa.select(schema.runs.c.status)).scalar_one() == "running"
    before = rows()
    assert any(before.values()), f"no track marked open by the killed run itself: {before}"
    added = add_folder(Writer(eng, None), out)  # the rest: tracks written to disk after the last batch
    consistent(eng)
    after = rows()
    on_disk = {int(d.name) for d in (out / "tracks").glob("*") if (d / "track.json").is_file()}
    started = set()
    for line in (out / "events.jsonl").read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:  # the line the kill cut
            continue
        if e.get("event") == "track_start":
            started.add(e["track"])
    assert {no for no, is_open in after.items() if not is_open} == on_disk
    assert started - on_disk <= {no for no, is_open in after.items() if is_open}
    assert set(before) <= set(after) and added.tracks == len(on_disk - {n for n, o in before.items() if not o})
    assert add_folder(Writer(eng, None), out).tracks == 0 and rows() == after
    eng.dispose()


def test_bad_catalogue_input_is_one_line(tmp_path):
    assert "older-than" in run_cli("catalog", "prune", "--older-than", "soon", "--catalog",
                                   str(tmp_path / "c.sqlite")).stderr
    proc = run_cli("catalog", "stats", "--catalog", "mysql://x/y")
    assert proc.returncode == 2 and proc.stderr.startswith("error: catalog URL: unknown scheme")
    proc = run_cli("search", "--face", str(tmp_path / "none.jpg"), "--catalog", str(tmp_path / "c.sqlite"), env=ENV)
    assert proc.returncode == 2 and "cannot read the probe photo" in proc.stderr


def test_a_talking_head_probe_finds_its_own_person_first_at_32px(tmp_path):
    clips = ["d0", "vr3", "vr5"]
    require(*(HEADS / f"{c}.mp4" for c in clips), MODELS)
    sys.path.insert(0, str(ROOT / "benchmarks" / "catalog"))
    import retrieval

    out = retrieval.main(["--out", str(tmp_path), "--sizes", "32", "--clips", ",".join(clips), "--frames", "40",
                          "--probes", "2"])
    assert out == 0
    doc = json.loads((tmp_path / "retrieval.json").read_text())
    result = doc["sizes"]["32"]
    assert result["probes"] == 6
    assert all(p["rank1"] for p in result["probes_raw"]), result["probes_raw"]
    # and through the command line, with a probe photo written to disk
    import cv2

    first, _ = retrieval.halves(HEADS / "vr3.mp4")
    photo = tmp_path / "probe.jpg"
    cv2.imwrite(str(photo), first[len(first) // 2])
    proc = run_cli("search", "--face", str(photo), "--catalog", str(tmp_path / "catalog_32.sqlite"), "--json",
                   "--top", "3", env=ENV)
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)["results"]
    assert hits[0]["camera"] == "vr3" and hits[0]["similarity"] > hits[-1]["similarity"]
    only = run_cli("search", "--face", str(photo), "--catalog", str(tmp_path / "catalog_32.sqlite"), "--json",
                   "--camera", "d0", env=ENV)
    assert {h["camera"] for h in json.loads(only.stdout)["results"]} == {"d0"}


def test_ray_two_nodes_write_to_one_postgresql(pg, tmp_path):
    """Recordings on two Ray nodes, each task writing its tracks into the same PostgreSQL as it goes."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'enhance-faces[ray]')")
    require(OFFICE, MODELS)
    from pipeline.distributed.local_cluster import LocalCluster
    from pipeline.lab.ray_bench import cut

    clips = tmp_path / "clips"
    clips.mkdir()
    for name, start in {"c0": 0, "c200": 200}.items():
        cut(OFFICE, clips / f"{name}.mp4", start, 50)
    out = tmp_path / "o"
    url = pg.url()
    eng0 = sa.create_engine(db.resolve(url)[0], isolation_level="AUTOCOMMIT")
    with eng0.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE ray_catalog")
    eng0.dispose()
    url = url.replace("/postgres", "/ray_catalog")
    with LocalCluster([{"cpus": 1}, {"cpus": 1, "resources": {"second_node": 1}}]) as cluster:
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "process", str(clips), "--out", str(out),
                               "--engine", "ray", "--ray-address", cluster.address, "--models", str(MODELS),
                               "--quiet", "--set", "output.video=false", "--catalog", url],
                              capture_output=True, text=True, cwd=ROOT, env=cluster.env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = json.loads((out / "manifest.json").read_text())
    assert len({r["node"]["id"] for r in job["runs"]}) == 2  # both nodes wrote
    eng = db.engine(url)
    with eng.connect() as conn:
        runs = conn.execute(sa.select(schema.runs.c.folder, schema.runs.c.status)).all()
        n_tracks = conn.execute(sa.select(sa.func.count()).select_from(schema.tracks)).scalar_one()
    assert sorted(runs) == sorted((str((out / n).resolve()), "complete") for n in ("c0", "c200"))  # published folders
    assert n_tracks == sum(len(list((out / n / "tracks").glob("*/track.json"))) for n in ("c0", "c200")) > 0
    assert add_folder(Writer(eng, None), out).tracks == 0
    consistent(eng)
    eng.dispose()


def test_ages_times_tokens_and_file_roots(tmp_path):
    from pipeline.catalog.web.guard import inside, required_token
    from pipeline.core.errors import ConfigError

    assert query.age_seconds("30d") == 30 * 86400 and query.age_seconds("12h") == 43200
    for bad in ("30", "d", "-1d", "1y"):
        with pytest.raises(ConfigError):
            query.age_seconds(bad)
    assert query.when("2026-12-01T14:00") == query.when("2026-12-01T14:00+00:00") == query.when("1796133600")
    with pytest.raises(ConfigError):
        query.when("yesterday")
    assert required_token("127.0.0.1", None) is None and required_token("::1", None) is None
    with pytest.raises(ConfigError):
        required_token("0.0.0.0", None)
    with pytest.raises(ConfigError):
        required_token("192.168.1.5", "short")
    assert required_token("0.0.0.0", "x" * 16) == "x" * 16
    root = tmp_path / "run"
    (root / "tracks" / "1").mkdir(parents=True)
    (root / "tracks" / "1" / "a.png").write_bytes(b"x")
    (tmp_path / "secret").write_text("no")
    (root / "link").symlink_to(tmp_path / "secret")
    assert inside(root, "tracks/1/a.png") == (root / "tracks" / "1" / "a.png").resolve()
    for bad in ("../secret", "tracks/../../secret", str(tmp_path / "secret"), "link", "tracks/1", "", "a\0b"):
        assert inside(root, bad) is None, bad
    with pytest.raises(ConfigError, match="NOPE_NOT_SET_X"):
        db.resolve("postgresql://u:${NOPE_NOT_SET_X}@h/db")
    assert db.shown("postgresql://u:hunter22@h/db") == "postgresql://u:***@h/db"


def test_a_live_rtsp_camera_is_catalogued_with_wall_clock_times_and_no_password(catalog_url, tmp_path):
    from support import rtsp

    ok, why = rtsp.available()
    if not ok:
        pytest.skip(f"GStreamer RTSP server unavailable: {why}")
    require(OFFICE, MODELS)
    out = tmp_path / "o"
    env = {**ENV, "CAM_PASS": "s3cr3t-pw", postgres.PASSWORD_VAR: os.environ.get(postgres.PASSWORD_VAR, "")}
    began = time.time()
    with rtsp.RtspServer({"cam": OFFICE}, loop=True, user="operator:s3cr3t-pw") as server:
        url = server.url("cam").replace("rtsp://", "rtsp://operator:${CAM_PASS}@")
        proc = run_cli("process", url, "--out", str(out), "--set", "source.max_frames=90", "--set",
                       "source.reconnect_attempts_at_start=10", "--set", "output.video=false", "--quiet",
                       "--catalog", catalog_url, env=env, timeout=600)
    ended = time.time()
    assert proc.returncode == 0, proc.stderr
    eng = db.engine(catalog_url)
    with eng.connect() as conn:
        tracks = conn.execute(sa.select(schema.tracks.c.first_at, schema.tracks.c.last_at)).all()
        inputs = conn.execute(sa.select(schema.recordings.c.input)).scalars().all()
        cams = conn.execute(sa.select(schema.cameras.c.name)).scalars().all()
    on_disk = len(list((out / "tracks").glob("*/track.json")))
    assert len(tracks) == on_disk >= 1
    assert all(began <= a <= b <= ended for a, b in tracks)  # the camera's wall clock, not stream seconds
    assert inputs and all("s3cr3t" not in i for i in inputs) and cams
    consistent(eng)
    eng.dispose()


def test_run_identity_is_read_from_the_manifest_the_run_wrote():
    from pipeline.catalog.identity import identity, settings_sha256

    recorded = {"input": {"path": "/cases/a.mp4", "size": 5, "mtime_ns": 2_000_000_000},
                "settings": {"detect.model": "det_500m.onnx"}, "weights": {"detector": "d", "generator": "g"},
                "version": "0.1.0"}
    got = identity({"inputs": ["a.mp4"], "identity": recorded, "settings": {"other": 1}})
    assert (got.input, got.size, got.mtime, got.weights_sha256, got.version) == ("/cases/a.mp4", 5, 2.0, "g", "0.1.0")
    assert got.settings_sha256 == settings_sha256(recorded["settings"])


def _synthetic_track(no: int, vec: np.ndarray, start: float = 0.0):
    from pipeline.catalog.embed import TrackFaces
    from pipeline.catalog.ingest import Finished
    from pipeline.io.records import Observation, TrackRecord

    obs = [Observation(frame=f, time=start + f / 25, box=[0, 0, 16, 18], kps=[[4.0, 6.0]] * 5, score=0.8,
                       quality=0.5, sharpness=1.0, frontalness=1.0, entry=16, matrix=[[4.0, 0, 0], [0, 4.0, 0]],
                       enhanced=False, confidence=None) for f in range(3)]
    return Finished(TrackRecord.of(no, "cam", obs, 0, None, None), TrackFaces([0], vec[None], vec, 16.0), [])


def test_batches_open_rows_and_the_search_cache_that_erasure_removes(tmp_path, monkeypatch):
    """A batch is all or nothing; an open track finished later keeps its id; the command line's vector cache
    finds new tracks, is refused for another catalogue, and goes when a track is forgotten."""
    from pipeline.catalog.ingest import Opened
    from pipeline.catalog.search import Index, rank, rank_cached

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((4, 128)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    eng = db.engine(str(tmp_path / "c.sqlite"))
    w = Writer(eng, None)
    run = w.run(tmp_path / "run", {"inputs": ["cam.mp4"], "started": "2026-12-01T00:00:00+00:00"}, "cam")
    assert w.write_batch(run, [Opened(1, 0.0), Opened(2, 0.5)]) == 2
    with eng.connect() as conn:
        open_ids = dict(conn.execute(sa.select(schema.tracks.c.track_no, schema.tracks.c.id)).all())
    bad = _synthetic_track(3, vecs[2])
    bad.record.observations[0].box = object()  # not JSON: the whole batch must fail
    with pytest.raises(Exception):
        w.write_batch(run, [_synthetic_track(1, vecs[0]), bad])
    assert query.stats(eng)["counts"]["observations"] == 0 and query.stats(eng)["counts"]["open_tracks"] == 2
    assert w.write_batch(run, [_synthetic_track(1, vecs[0]), Opened(1, 0.0)]) == 1
    assert w.write_batch(run, [_synthetic_track(1, vecs[0])]) == 0  # idempotent
    with eng.connect() as conn:
        rows = dict(conn.execute(sa.select(schema.tracks.c.track_no, schema.tracks.c.open)).all())
        same = conn.execute(sa.select(schema.tracks.c.id).where(schema.tracks.c.track_no == 1)).scalar_one()
    assert rows == {1: False, 2: True} and same == open_ids[1]
    consistent(eng)

    hits = rank_cached(eng, vecs[0])
    cache = db.vector_cache(eng)
    assert cache.is_file() and [h.track for h in hits] == [open_ids[1]]
    w.write_batch(run, [_synthetic_track(2, vecs[1]), _synthetic_track(4, vecs[3])])  # finished since
    assert [h.track for h in rank_cached(eng, vecs[3])][:1] == [h.track for h in rank(eng, vecs[3])][:1]
    assert len(rank_cached(eng, vecs[1])) == 3
    other = db.engine(str(tmp_path / "other.sqlite"))
    with other.connect() as conn:
        assert len(Index.load(cache, conn).ids) == 0  # another catalogue's cache is not used
    assert query.forget(eng, open_ids[1])
    assert not cache.exists()  # erasure leaves no copy of the embedding behind
    assert open_ids[1] not in [h.track for h in rank_cached(eng, vecs[0])]
    eng.dispose()
    other.dispose()
