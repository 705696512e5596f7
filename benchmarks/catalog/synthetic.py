"""The catalogue at scale, on synthetic tracks: ingest rate from concurrent writers, search latency, size.

    python benchmarks/catalog/synthetic.py --catalog /tmp/syn.sqlite --out /tmp/syn.json
    python benchmarks/catalog/synthetic.py --catalog 'postgresql://enhance:${PGPASS}@127.0.0.1:5432/bench' ...

1. Ingest: `--writers` processes each write `--ingest-tracks` tracks of `--obs` observations (and 3 crop
   embeddings) through `ingest.Writer.write_batch`, `--batch` tracks per transaction (1: each track alone,
   as a sink that keeps up writes; up to `sink.BATCH` when the tracks queue faster than the database takes
   them, as they do here); observations per second over all of them.
2. Fill: the catalogue is brought to `--tracks` tracks (`--obs` observations each) over `--cameras` cameras
   and 30 days with bulk inserts (not part of the ingest rate).
3. Search: `--queries` searches of each kind — no filter, one camera, one camera and one day, one day —
   (top 10), as `enhance-faces search` runs them (`search.rank_cached`: each call a fresh process's work,
   the vectors loaded from the cache file, brought up to date and used; the first call, which builds the
   cache from the database, is timed apart as `cold`) and as `serve` does (vectors held in memory,
   `search.Index`); p50 and p95 in ms.
4. Size: bytes on disk per million observations.

Writes a JSON document with the command, every setting and every figure, and prints a short table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline.catalog import db, schema as s  # noqa: E402
from pipeline.catalog.embed import DIM, TrackFaces, to_bytes  # noqa: E402
from pipeline.catalog.ingest import Writer  # noqa: E402
from pipeline.catalog.query import Filters  # noqa: E402
from pipeline.catalog.search import Index, rank, rank_cached  # noqa: E402
from pipeline.io.records import Observation, TrackRecord  # noqa: E402

DAY = 86400.0
T0 = 1_790_000_000.0  # where the synthetic month starts (UNIX seconds)


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def observation(rng: np.random.Generator, frame: int) -> Observation:
    x, y = rng.uniform(0, 600, 2)
    return Observation(frame=frame, time=frame / 25, box=[x, y, x + 16, y + 18], kps=[[x + 4, y + 6]] * 5,
                       score=0.7, quality=float(rng.uniform()), sharpness=10.0, frontalness=0.8, entry=16,
                       matrix=[[4.0, 0.0, -x], [0.0, 4.0, -y]], enhanced=frame % 5 == 0, confidence=0.5)


def writer_proc(url: str, index: int, tracks: int, obs: int, cameras: int, out: mp.Queue, batch: int = 1) -> None:
    from pipeline.catalog.ingest import Finished, RunRef

    rng = np.random.default_rng(index)
    eng = db.engine(url)
    w = Writer(eng, None)
    manifest = {"inputs": [f"cam{index % cameras}.mp4"], "started": f"2026-11-01T00:00:{index:02d}+00:00",
                "status": "running", "settings": {}, "tool": "enhance bench"}
    run: RunRef = w.run(Path(f"/bench/writer{index}-batch{batch}"), manifest, f"cam{index % cameras}")
    t0 = time.perf_counter()
    pending: list[Finished] = []
    for n in range(tracks):
        rows = [observation(rng, f) for f in range(n * obs, n * obs + obs)]
        record = TrackRecord.of(n + 1, run.folder.name, rows, sum(o.enhanced for o in rows), None, None)
        vecs = unit(rng, 3)
        faces = TrackFaces([rows[0].frame, rows[1].frame, rows[2].frame], vecs, vecs.mean(0) / np.linalg.norm(vecs.mean(0)), 16.0)
        pending.append(Finished(record, faces, [(rows[0].frame, "original", f"tracks/{n + 1}/a.png", None)]))
        if len(pending) >= batch or n == tracks - 1:
            assert w.write_batch(run, pending) == len(pending)
            pending = []
    out.put((tracks * obs, time.perf_counter() - t0))
    eng.dispose()


def ingest(url: str, writers: int, tracks: int, obs: int, cameras: int, batch: int = 1) -> dict:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=writer_proc, args=(url, i, tracks, obs, cameras, q, batch)) for i in range(writers)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        raise SystemExit(f"a writer failed: exit codes {[p.exitcode for p in procs]}")
    done = [q.get() for _ in procs]
    wall = time.perf_counter() - t0
    total = sum(n for n, _ in done)
    slowest = max(t for _, t in done)
    return {"writers": writers, "batch": batch, "observations": total, "wall_s": round(wall, 2), "writing_s": round(slowest, 2),
            "obs_per_s": round(total / slowest, 1), "tracks_per_s": round(writers * tracks / slowest, 1)}


def fill(eng, tracks: int, obs: int, cameras: int, seed: int = 7, batch: int = 2000) -> int:
    """Bulk rows up to `tracks` tracks: a run per camera, tracks spread over 30 days."""
    import sqlalchemy as sa

    rng = np.random.default_rng(seed)
    with eng.connect() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(s.tracks)).scalar_one()
    need = max(tracks - have, 0)
    if not need:
        return 0
    w = Writer(eng, None)
    runs = [w.run(Path(f"/bench/camera{c}"), {"inputs": [f"rtsp://cam{c}"], "started": "2026-11-01T00:00:00+00:00",
                                               "status": "complete", "settings": {}, "tool": "enhance bench"},
                  f"cam{c}", live=True) for c in range(cameras)]
    next_no = {r.id: 100_000 for r in runs}
    made = 0
    while made < need:
        n = min(batch, need - made)
        with eng.begin() as conn:
            t_rows, starts = [], rng.uniform(T0, T0 + 30 * DAY, n)
            picks = rng.integers(0, cameras, n)
            vecs = unit(rng, n)
            for i in range(n):
                r = runs[picks[i]]
                next_no[r.id] += 1
                t_rows.append(dict(run_id=r.id, camera_id=r.camera_id, track_no=next_no[r.id], first_frame=0,
                                   last_frame=obs - 1, first_time=0.0, last_time=obs / 25, first_at=starts[i],
                                   last_at=starts[i] + obs / 25, n_observations=obs, n_enhanced=obs // 5,
                                   best_tile=None, confidence=0.5, person=None, open=False,
                                   embedding=to_bytes(vecs[i]), embedded_px=16.0))
            ids = conn.execute(sa.insert(s.tracks).returning(s.tracks.c.id, sort_by_parameter_order=True),
                               t_rows).scalars().all()
            o_rows = []
            for tid in ids:
                for f in range(obs):
                    o = observation(rng, f)
                    o_rows.append(dict(track_id=tid, frame=o.frame, time=o.time, at=None, box=o.box, kps=o.kps,
                                       matrix=o.matrix, score=o.score, quality=o.quality, size=o.size, entry=o.entry,
                                       enhanced=o.enhanced, confidence=o.confidence, resolved=False))
            conn.execute(sa.insert(s.observations), o_rows)
        made += n
    return made


def searches(eng, queries: int, cameras: int, seed: int = 11, index: Index | None = None) -> dict:
    rng = np.random.default_rng(seed)
    kinds = {
        "no filter": lambda: Filters(),
        "one camera": lambda: Filters(camera=f"cam{rng.integers(cameras)}"),
        "camera and day": lambda: (lambda d: Filters(camera=f"cam{rng.integers(cameras)}", since=d, until=d + DAY))(
            T0 + float(rng.integers(30)) * DAY),
        "one day": lambda: (lambda d: Filters(since=d, until=d + DAY))(T0 + float(rng.integers(30)) * DAY),
    }
    out = {}
    for name, make in kinds.items():
        times = []
        for _ in range(queries):
            f, probe = make(), unit(rng, 1)[0]
            t0 = time.perf_counter()
            hits = rank(eng, probe, f, top=10, index=index) if index is not None else rank_cached(eng, probe, f, 10)
            times.append((time.perf_counter() - t0) * 1000)
        assert hits or name != "no filter"
        out[name] = {"p50_ms": round(float(np.percentile(times, 50)), 1),
                     "p95_ms": round(float(np.percentile(times, 95)), 1), "queries": queries}
    return out


def size(eng, url: str) -> int:
    import sqlalchemy as sa

    if eng.dialect.name == "postgresql":
        with eng.connect() as conn:
            return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
    with eng.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    path = Path(db.resolve(url)[0].removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    import sqlalchemy as sa

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tracks", type=int, default=100_000)
    p.add_argument("--obs", type=int, default=10)
    p.add_argument("--cameras", type=int, default=50)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--ingest-tracks", type=int, default=250, help="tracks each writer writes in the ingest phase")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16],
                   help="tracks per transaction in the ingest phase; one ingest measurement per value")
    p.add_argument("--queries", type=int, default=40)
    args = p.parse_args(argv)
    eng = db.engine(args.catalog)
    doc: dict = {"command": " ".join(["python", "benchmarks/catalog/synthetic.py", *(argv or sys.argv[1:])]),
                 "settings": vars(args), "dialect": eng.dialect.name}
    doc["ingest"] = [ingest(args.catalog, args.writers, args.ingest_tracks, args.obs, args.cameras, b)
                     for b in args.batch]
    t0 = time.perf_counter()
    doc["fill"] = {"tracks": fill(eng, args.tracks, args.obs, args.cameras), "s": round(time.perf_counter() - t0, 1)}
    db.drop_vector_cache(eng)
    t0 = time.perf_counter()
    rank_cached(eng, unit(np.random.default_rng(3), 1)[0], Filters(), 10)  # builds the cache file
    doc["search_cold_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    doc["search"] = searches(eng, args.queries, args.cameras)  # as `enhance-faces search` does
    db.drop_vector_cache(eng)
    index = Index()
    t0 = time.perf_counter()
    with eng.connect() as conn:
        index.refresh(conn)
    doc["index_load_s"] = round(time.perf_counter() - t0, 2)
    doc["search_serve"] = searches(eng, args.queries, args.cameras, index=index)  # as `serve` does
    with eng.connect() as conn:
        n_obs = conn.execute(sa.select(sa.func.count()).select_from(s.observations)).scalar_one()
    total = size(eng, args.catalog)
    doc["size"] = {"bytes": total, "observations": n_obs, "mb_per_million_obs": round(total / 2**20 / (n_obs / 1e6), 1)}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    for i in doc["ingest"]:
        print(f"{eng.dialect.name}: ingest {i['obs_per_s']:.0f} obs/s ({i['writers']} writers, "
              f"{i['batch']} tracks per transaction)")
    for mode in ("search", "search_serve"):
        for k, v in doc[mode].items():
            print(f"  {mode:<12} {k:<15} p50 {v['p50_ms']:>7.1f} ms  p95 {v['p95_ms']:>7.1f} ms")
    print(f"  search, first call (cache built from the database): {doc['search_cold_ms']} ms")
    print(f"  size {doc['size']['mb_per_million_obs']} MB per million observations")
    eng.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
