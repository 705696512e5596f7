"""The driver of a Ray job: plan the recordings, start (or join) Ray, send one task per recording and one
actor per camera, show progress, gather every outcome into `OUT/manifest.json`, write one report.

What runs where: this process only plans, waits and writes the job's manifest and report. Each recording
runs entirely on the node Ray gives it (SPREAD over the nodes), reading the file and writing
`OUT/<name>/`, so OUT and the inputs must be on storage every node sees at the same path. Each node's
generator actor serves the recordings running there. Ctrl-C stops the job: recordings not finished are
cancelled (their partial output is discarded; a re-run does them), cameras end cleanly.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray

from ..core.config import Config
from ..core.errors import EnhanceError
from ..run.inputs import Input, default_jobs, expand, folder_names
from ..core.models import find_model
from ..run.progress import ProgressSettings
from ..run.session import prepare_out
from ..io.sources import open_source
from ..io.sources.probe import split_stream
from ..run.stop import StopFlag
from .camera import CameraActor
from .cluster import connect, one_line
from .generator import generator_stats, start_generators
from .manifest import JobRecord
from .progress import JobView, ProgressActor, eta
from .recording import MAX_RETRIES, PARTIAL, Recording, finished, run_recording, summary

POLL_S = 0.5  # how often the driver looks at finished tasks and progress
STOP_GRACE_S = 60.0  # after Ctrl-C: how long cancelled recordings and stopping cameras get to wind down


def run_job(inputs: list[str], out: Path, cfg: Config, models_dir: str | Path | None = None,
            address: str | None = None, jobs: int | None = None,
            progress: bool | str | ProgressSettings = True) -> int:
    """The whole job; returns the exit code (0 all done, 1 some recordings failed, 130 stopped)."""
    cfg = nodes_paths(cfg)
    recordings, cameras = plan(inputs, cfg)
    out = prepare_out(out.absolute())
    find_model(cfg.detect.model, models_dir)  # a missing model is one line now, not one per recording
    if cfg.enhance.policy != "none":
        from ..stages.enhance.stage import default_weights

        weights = Path(cfg.enhance.weights) if cfg.enhance.weights else default_weights(cfg.enhance.fusion)
        if not weights.is_file():
            raise EnhanceError(f"generator weights not found: {weights}")
    job = JobRecord(out, inputs, cfg, recordings + cameras)
    todo = []
    for rec in recordings:
        done = finished(out / rec.folder, rec.spec)
        if done is None:
            todo.append(rec)
        else:
            job.runs[rec.folder] = summary(rec, "skipped", done.get("node") or {}, stats=done.get("stats") or {})
    job.write()
    stop = StopFlag()
    if todo or cameras:
        _on_ray(job, todo, cameras, cfg, models_dir, address, jobs, progress, stop)
    job.write(bool(stop))
    _tidy(out / PARTIAL)
    if cfg.output.gallery and any((out / r.folder).is_dir() for r in job.sources):
        job.report = _report(out, cfg, models_dir)
        job.write(bool(stop))
    _print_summary(job, out, bool(stop))
    if stop:
        return 130
    return 1 if job.counts().get("failed") else 0


def _on_ray(job: JobRecord, todo: list[Recording], cameras: list[Recording], cfg: Config,
            models_dir: str | Path | None, address: str | None, jobs: int | None, progress: ProgressSettings | bool,
            stop: StopFlag) -> None:
    """Start or join Ray, place the generators, run everything, collect the generators' batch counts."""
    models = os.path.abspath(models_dir) if models_dir else None
    t0 = time.perf_counter()
    with connect(address, (jobs or default_jobs()) + len(cameras)) as cluster:
        job.cluster = cluster.as_dict()
        generators = start_generators(cfg, cluster.nodes) if cfg.enhance.policy != "none" else {}
        board = ProgressActor.remote()
        args = (str(job.out), cfg, models, generators or None, board)
        view = JobView(len(job.sources) - len(cameras), progress)
        try:
            with stop.installed():
                _drive(job, todo, cameras, args, jobs if address else None, board, view, stop)
        finally:
            view.close()
            job.wall_s = time.perf_counter() - t0 - cluster.startup_s
            job.generator = generator_stats(generators) if generators else None


def nodes_paths(cfg: Config) -> Config:
    """The config with its files as absolute paths: a Ray worker does not start in this folder."""
    def absolute(path: str) -> str:
        return os.path.abspath(os.path.expanduser(path)) if path else path

    prov = cfg.provenance
    return replace(cfg, enhance=replace(cfg.enhance, weights=absolute(cfg.enhance.weights)),
                   provenance=replace(prov, c2pa_cert=absolute(prov.c2pa_cert), c2pa_key=absolute(prov.c2pa_key)))


def plan(inputs: list[str], cfg: Config) -> tuple[list[Recording], list[Recording]]:
    """Recordings (absolute paths: every node reads the same path) and cameras, with their folder names."""
    items = expand(inputs) + [Input(c.uri, c.name or None) for c in cfg.sources]
    if not items:
        raise EnhanceError("no input: give INPUT on the command line or a `sources:` list in the config")
    cameras = {c.name for c in cfg.sources}
    names = folder_names([(i.label(), i.live or i.label() in cameras) for i in items])
    recordings, live = [], []
    for item, folder in zip(items, names):
        if item.live:
            live.append(Recording(item.spec, item.label(), folder))
            continue
        if "://" in item.spec:
            open_source(item.spec, cfg.source).close()  # not a camera either: says which schemes are
        file, stream = split_stream(item.spec)
        path = Path(file).expanduser()
        if not path.exists():
            raise EnhanceError(f"file not found: {item.spec}")
        spec = os.path.abspath(path) + ("" if stream is None else f":v:{stream}")  # links kept: the path must
        # read the same on every node, and a link to a share's mount point may not resolve alike
        recordings.append(Recording(spec, item.label(), folder))
    return recordings, live


def _drive(job: JobRecord, todo: list[Recording], cameras: list[Recording], args: tuple, window: int | None,
           board: Any, view: JobView, stop: StopFlag) -> None:
    """Submit, wait, show progress, collect outcomes; on a stop cancel what runs and end the cameras."""
    waiting = deque(todo)
    tasks: dict[Any, Recording] = {}
    actors: dict[Any, tuple[Any, Recording]] = {}
    for cam in cameras:
        actor = CameraActor.remote()
        actors[actor.run.remote(cam, *args)] = (actor, cam)
    started = time.perf_counter()
    stopping_since: float | None = None
    snapshot: dict[str, tuple[int, int, int | None]] = {}
    while waiting or tasks or actors:
        while waiting and not stop and (window is None or len(tasks) < window):
            rec = waiting.popleft()
            tasks[run_recording.remote(rec, *args)] = rec
        ready, _ = ray.wait(list(tasks) + list(actors), num_returns=1, timeout=POLL_S)
        for ref in ready:
            rec = tasks.pop(ref, None) or actors.pop(ref)[1]
            job.runs[rec.folder] = _outcome(ref, rec)
            job.write()
        try:
            snapshot = ray.get(board.snapshot.remote(), timeout=10)
        except (ray.exceptions.RayError, TimeoutError):
            pass  # the view skips a beat
        _show(job, snapshot, view, time.perf_counter() - started)
        if stop and stopping_since is None:
            stopping_since = time.perf_counter()
            waiting.clear()
            for ref in tasks:
                ray.cancel(ref)
            for actor, _ in actors.values():
                actor.stop.remote(f"stopped: {stop.signal}")
        elif stopping_since is not None and time.perf_counter() - stopping_since > STOP_GRACE_S:
            for ref, rec in list(tasks.items()) + [(r, a[1]) for r, a in actors.items()]:
                job.runs[rec.folder] = summary(rec, "interrupted", {}, reason="did not stop in time")
            return


def _outcome(ref: Any, rec: Recording) -> dict:
    """A task's or camera's summary; Ray's errors as one line."""
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return summary(rec, "interrupted", {}, reason="stopped before it finished (its partial output was discarded)")
    except ray.exceptions.RayTaskError as e:  # a bug in the pipeline: the exception, not its traceback
        cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else None
        reason = f"{type(cause).__name__}: {cause}" if cause is not None else one_line(e)
        return summary(rec, "failed", {}, reason=reason)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ActorDiedError) as e:
        return summary(rec, "failed", {}, reason=f"its worker died {1 + MAX_RETRIES} times ({type(e).__name__})")
    except ray.exceptions.RayError as e:
        return summary(rec, "failed", {}, reason=f"{type(e).__name__}: {one_line(e)}")


def _show(job: JobRecord, snapshot: dict, view: JobView, elapsed: float) -> None:
    """Recordings done/total, frames/s, faces and ETA from the recordings' latest counters."""
    states = {k: s["status"] for k, s in job.runs.items()}
    frames = sum(f for f, _, _ in snapshot.values())
    faces = sum(n for _, n, _ in snapshot.values())
    fps = frames / elapsed if elapsed > 0 else 0.0
    recordings = {r.folder for r in job.sources[:view.total]}
    done = len(recordings & set(states))
    failed = sum(1 for s in states.values() if s == "failed")
    not_started = len(recordings - set(states) - set(snapshot))
    view.show(done, failed, frames, faces, eta(fps, snapshot, set(states), not_started))


def _tidy(partial: Path) -> None:
    """Remove OUT/.partial when nothing is left in it (a recording that failed or was stopped cleared its own)."""
    try:
        partial.rmdir()
    except OSError:
        pass  # absent, or it holds the trace of a recording whose every attempt died: kept for a look


def _report(out: Path, cfg: Config, models_dir: str | Path | None) -> dict:
    """One report.html / people.json / gallery.png over every run in OUT (read back from disk)."""
    from ..report import write_report

    t = time.perf_counter()
    try:
        path = write_report(out, cfg, models_dir)
    except EnhanceError as e:
        return {"error": str(e)}
    return {"path": path.name, "seconds": round(time.perf_counter() - t, 2)}


def _print_summary(job: JobRecord, out: Path, stopped: bool) -> None:
    c, t = job.counts(), job.totals()
    cl = job.cluster or {}
    status = job.status(stopped)
    done = c.get("complete", 0) + c.get("skipped", 0)
    extra = "".join(f", {c[k]} {k}" for k in ("skipped", "failed", "interrupted") if c.get(k))
    print(f"{status}: {done} of {c['total']} sources done{extra}; {t['frames']} frames in "
          f"{t['wall_s']:.1f}s ({t['fps'] or 0:.1f} fps, {t['recordings_per_min'] or 0:.1f} recordings/min), "
          f"{t['faces']} faces, {t['tracks']} tracks → {out}")
    nodes = cl.get("nodes") or []
    used = {(s.get("node") or {}).get("id") for s in job.runs.values() if s["status"] == "complete"} - {None}
    if cl:
        print(f"  ray: {cl['address']}, {len(nodes)} node(s), {len(used)} used, start-up {cl['startup_s']:.1f}s")
    else:
        print("  ray: not started (every recording was already complete)")
    gen = job.generator
    if gen and gen.get("batches"):
        print(f"  generator: {gen['faces']} faces in {gen['batches']} batches (mean {gen['mean_batch']}) on "
              f"{len(gen['actors'])} actor(s)")
    if job.report.get("error"):
        print(f"  report: {job.report['error']}")
    for s in job.runs.values():
        if s["status"] in ("failed", "interrupted") and s.get("reason"):
            print(f"  {s['status']}: {s['name']}: {s['reason']}", file=sys.stderr)
