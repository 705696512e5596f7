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
import signal
import sys
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray

from ..core.config import Config
from ..core.errors import EnhanceError, InputError
from ..io.sources import open_source
from ..io.sources.probe import split_stream
from ..run.batch import JobRecord, exit_code, identity, outcome, output_settings, weights
from ..run.inputs import Input, default_jobs, expand, folder_names
from ..run.outdir import claim_job, read_manifest
from ..run.progress import JsonLines, ProgressSettings, reporting, settings_of, source_line
from ..run.runner import check_size
from ..run.session import prepare_out
from ..run.stop import StopFlag
from .camera import CameraActor
from .cluster import connect, one_line
from .generator import generator_stats, start_generators
from .progress import JobView, ProgressActor, eta
from .recording import MAX_RETRIES, PARTIAL, Recording, run_recording, summary

POLL_S = 0.5  # how often the driver looks at finished tasks and progress
STOP_GRACE_S = 60.0  # after Ctrl-C: how long cancelled recordings and stopping cameras get to wind down


def run_job(inputs: list[str], out: Path, cfg: Config, models_dir: str | Path | None = None,
            address: str | None = None, jobs: int | None = None,
            progress: bool | str | ProgressSettings = True, overwrite: bool = False,
            content_hash: bool = False) -> int:
    """The whole job; returns the exit code, as the local engine's (docs/jobs.md): 0 all done or skipped,
    1 some recordings failed, 130/143 stopped; raises for 2 (nothing could start) and 74 (output refused)."""
    settings = settings_of(progress)
    lines = settings.lines or (JsonLines(out, "ray") if settings.mode == "json" else None)
    stop = StopFlag()
    with reporting(lines):
        job = _run_job(inputs, out, cfg, models_dir, address, jobs, replace(settings, lines=lines), overwrite,
                       content_hash, stop)
    code = exit_code(job.states(), stop.signum or (signal.SIGINT if stop else None))
    if lines is not None:
        lines.final(code, outcome(code))
    return code


def _run_job(inputs: list[str], out: Path, cfg: Config, models_dir: str | Path | None, address: str | None,
             jobs: int | None, progress: ProgressSettings, overwrite: bool, content_hash: bool,
             stop: StopFlag) -> JobRecord:
    cfg = nodes_paths(cfg)
    planned = plan(inputs, cfg)
    if all(reason for _, _, reason in planned):
        raise InputError(planned[0][2] if len(planned) == 1 else
                         f"none of the {len(planned)} inputs could be opened: {planned[0][2]}")
    out = prepare_out(out.absolute())
    sha = weights(cfg, models_dir)  # a missing model is one line now, not one per recording
    chosen = output_settings(cfg)
    entries = [replace(e, identity=identity(e.spec, chosen, sha, content_hash)) for e, _, _ in planned]
    ok = [(e, live) for e, (_, live, reason) in zip(entries, planned) if not reason]
    lines = progress.lines
    failed = [e.folder for e, (_, _, reason) in zip(entries, planned) if reason]
    with claim_job(out, [(out / e.folder, e.identity, live) for e, live in ok], overwrite, lock_targets=False,
                   others=failed) as claim:
        decisions = dict(zip((e.folder for e, _ in ok), claim.decisions))
        job = JobRecord(out, inputs, cfg, entries, engine="ray")
        todo, cameras = [], []
        for e, (_, live, reason) in zip(entries, planned):
            if reason:
                job.runs[e.folder] = summary(e, "failed", reason=reason)
                if lines is not None:
                    lines.error(reason, e.name)
                    lines.set(source_line(e.name, "failed", error=reason))
            elif decisions[e.folder] == "skip":
                earlier = read_manifest(out / e.folder) or {}
                job.runs[e.folder] = summary(e, "skipped", earlier.get("node") or {}, stats=earlier.get("stats") or {})
                if lines is not None:
                    lines.set(source_line(e.name, "skipped"))
            else:
                (cameras if live else todo).append(e)
        job.write()
        if lines is not None and (todo or cameras):
            lines.emit("starting")  # before Ray starts, which takes a while
        if todo or cameras:
            _on_ray(job, todo, cameras, cfg, models_dir, address, jobs, progress, stop)
        job.write(bool(stop))
        _tidy(out / PARTIAL)
        if cfg.output.gallery and any((out / r.folder).is_dir() for r in job.sources):
            job.report = _report(out, cfg, models_dir)
            job.write(bool(stop))
    _print_summary(job, out, bool(stop))
    return job


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


def plan(inputs: list[str], cfg: Config) -> list[tuple[Recording, bool, str | None]]:
    """Every source as (recording, live, why it cannot be processed or None), in input order, with its folder
    name; a recording by its absolute path (every node reads the same path). Each recording is opened and
    checked here as the local engine does, so a bad file fails with the same one-line reason in both."""
    items = expand(inputs) + [Input(c.uri, c.name or None) for c in cfg.sources]
    if not items:
        raise EnhanceError("no input: give INPUT on the command line or a `sources:` list in the config")
    cameras = {c.name for c in cfg.sources}
    names = folder_names([(i.label(), i.live or i.label() in cameras) for i in items])
    planned: list[tuple[Recording, bool, str | None]] = []
    for item, folder in zip(items, names):
        if item.live:
            planned.append((Recording(item.spec, item.label(), folder), True, None))
            continue
        spec = item.spec
        if "://" not in spec:
            file, stream = split_stream(spec)
            spec = os.path.abspath(Path(file).expanduser()) + ("" if stream is None else f":v:{stream}")  # links
            # kept: the path must read the same on every node, and a link to a share's mount point may not
        reason = None
        try:
            with open_source(spec, cfg.source, name=item.label()) as src:
                check_size(src, cfg)
        except InputError as e:
            reason = str(e)
        planned.append((Recording(spec, item.label(), folder), False, reason))
    return planned


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
            if job.runs[rec.folder]["status"] == "failed" and view.lines is not None:
                view.lines.error(job.runs[rec.folder].get("reason") or "failed", rec.name)
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
    frames = sum(r[0] for r in snapshot.values())
    fps = frames / elapsed if elapsed > 0 else 0.0
    recordings = {r.folder for r in job.sources[:view.total]}
    done = len(recordings & set(states))
    failed = sum(1 for s in states.values() if s == "failed")
    not_started = len(recordings - set(states) - set(snapshot))
    view.show(job, snapshot, done, failed, eta(fps, snapshot, set(states), not_started))


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
    for e in job.sources:
        s = job.outcome(e)
        if s["status"] in ("failed", "interrupted") and s.get("reason"):
            print(f"{s['status']}: {e.name}: {s['reason']}", file=sys.stderr)
