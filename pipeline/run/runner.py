"""The runner: source → detect → track → align → enhance → sinks, for every input of a command.

The stages are built once (`Stages`) and shared; each source gets its own `Session` (`run_source`), one
thread per source when there are several (every camera at once, recordings `jobs` at a time).

Batch semantics, the same as the Ray engine's (docs/jobs.md): every input is opened and checked first; one
that cannot be opened is a failed source with its one-line reason and the others go on (when none can, the
command fails with that reason: nothing could start). Each source's folder is decided by run identity
(`outdir.claim_job`): a finished run of the same identity is skipped, an unfinished one redone, another
identity refused unless `overwrite`. Several sources also get a job manifest (`OUT/manifest.json`) listing
each one's identity and state. A source whose run fails is failed on its own. The output folders are
locked for the whole run. Stopping (SIGINT/SIGTERM) during start-up ends the command at once (nothing
written yet); later it ends the frame loops, and everything after them — ending open tracks, closing the
video, writing the manifest — always runs, so an interrupted run leaves playable, listed files.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from contextlib import ExitStack, nullcontext
from dataclasses import replace
from pathlib import Path

from ..core.config import Config
from ..core.errors import EnhanceError, InputError
from ..core.runstats import RunResult, RunStats
from ..core.text import clean
from ..io.sources import Source, open_source
from ..io.sources.base import LARGE_FRAME, frame_memory, gigabytes
from .batch import Entry, JobRecord, exit_code, identity, outcome, output_settings, summary, weights
from .build import Stages
from .inputs import Input, default_jobs, expand, folder_names, not_outputs
from .outdir import claim_job
from .progress import JsonLines, ProgressSettings, reporting, settings_of, source_line
from .session import prepare_out, removed_if_unused, run_source
from .stop import StopFlag

log = logging.getLogger(__name__)


class JobStages(Stages):
    """The shared stages, and each source's run identity (by its spec) for its manifest."""

    def __init__(self, *args: object, identities: dict[str, dict], **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.identities = identities

    def info(self, inputs: list[str]) -> dict:
        return {**super().info(inputs), "identity": self.identities.get(inputs[0]) if inputs else None}


def process(inputs: list[str], out: Path, cfg: Config, models_dir: str | Path | None = None,
            progress: bool | str | ProgressSettings = True, overwrite: bool = False,
            jobs: int | None = None, content_hash: bool = False) -> list[RunResult]:
    """Process every input; one input writes into `out`, several (or a `sources:` list) into `out/<name>/`.

    A folder of recordings or a list file stands for the inputs in it. Several sources run at once, one
    thread each (every camera; at most `jobs` recordings, default: what the machine can hold), sharing
    the detector and the generator; one report at the top then groups the people seen by all of them.
    `overwrite`: redo runs already in `out` (otherwise finished ones of the same identity are skipped and
    others refused). `content_hash`: identify inputs by their content's sha256 rather than size and time.
    `progress`: True/"auto", "json" (JSON lines on stderr, ending in a final one), False/"off", or
    `ProgressSettings` (mode, interval). Returns one result per source, skipped and failed ones included.
    """
    settings = settings_of(progress)
    lines = settings.lines or (JsonLines(out, "local") if settings.mode == "json" else None)
    stop = StopFlag()
    with reporting(lines):
        results = _process(inputs, out, cfg, models_dir, replace(settings, lines=lines), overwrite, jobs,
                           content_hash, stop)
    if lines is not None:
        code = exit_code([r.status for r in results], stop.signum)
        lines.final(code, outcome(code))
    return results


def _process(inputs: list[str], out: Path, cfg: Config, models_dir: str | Path | None, settings: ProgressSettings,
             overwrite: bool, jobs: int | None, content_hash: bool, stop: StopFlag) -> list[RunResult]:
    items = expand(inputs, out=out) + [Input(c.uri, c.name or None) for c in cfg.sources]
    if not items:
        raise EnhanceError("no input: give INPUT on the command line or a `sources:` list in the config")
    not_outputs([i.spec for i in items], out)
    single = len(items) == 1 and not cfg.sources
    cameras = {c.name for c in cfg.sources}
    folders = [""] if single else folder_names([(i.label(), i.live or i.label() in cameras) for i in items])
    lines = settings.lines
    with stop.installed(), ExitStack() as opened:
        opened.enter_context(removed_if_unused(out))  # a start that fails leaves no empty folder behind
        # Open every source first, so a bad input is known before any work is done (or any old run removed).
        sources: list[Source | None] = []
        failed: dict[int, str] = {}
        for k, item in enumerate(items):
            try:
                src = opened.enter_context(open_source(item.spec, cfg.source, name=item.name))
                check_size(src, cfg)
                sources.append(src)
            except InputError as e:
                if single:
                    raise
                sources.append(None)
                failed[k] = str(e)
        if len(failed) == len(items):
            raise InputError(f"none of the {len(items)} inputs could be opened: {failed[0]}")
        out = prepare_out(out)
        sha = weights(cfg, models_dir)
        chosen = output_settings(cfg)
        entries = [Entry(i.spec, src.name if src is not None else i.label(), f,
                         identity(i.spec, chosen, sha, content_hash)) for i, src, f in zip(items, sources, folders)]
        targets = [out / e.folder if e.folder else out for e in entries]
        claim = opened.enter_context(claim_job(
            out, [(t, e.identity, i.live) for t, e, i, k in zip(targets, entries, items, range(len(items)))
                  if k not in failed], overwrite, others=[entries[k].folder for k in failed]))
        decisions = iter(claim.decisions)
        todo: list[int] = []
        results: list[RunResult | None] = [None] * len(items)
        for k, e in enumerate(entries):
            if k in failed:
                results[k] = _result(e, targets[k], "failed", failed[k])
                if lines is not None:
                    lines.error(failed[k], e.name)
            elif next(decisions) == "skip":
                results[k] = _result(e, targets[k], "skipped")
                sources[k].close()  # safe to call twice: the stack closes it again
            else:
                todo.append(k)
            if lines is not None and results[k] is not None:
                lines.set(source_line(e.name, results[k].status, error=results[k].error))
        for k in todo:
            if lines is not None:
                lines.set(source_line(entries[k].name, "pending"))
        job = None if single else JobRecord(out, inputs, cfg, entries)
        if job is not None:
            job.runs = {e.folder: _summary(e, r) for e, r in zip(entries, results) if r is not None}
            job.write()
        if todo:
            stages = JobStages(cfg, models_dir, settings, identities={e.spec: e.identity for e in entries})
            opened.callback(stages.close)
            stop.started()
            if single:
                results[0] = run_source(stages, sources[0], targets[0], stop)
            else:
                live = [k for k in todo if sources[k].live]
                largest = max((sources[k].width * sources[k].height for k in todo if k not in live), default=0)
                _run_concurrently(stages, sources, targets, todo, stop, jobs or default_jobs(largest), items, cfg,
                                  results, job)
            stages.network.close()  # what is still queued for a broker or endpoint that went away is lost now:
            stages.network.record(r.out / "manifest.json" for r in results  # counted in every manifest
                                  if r is not None and r.status not in ("skipped", "failed"))
        if job is not None:
            job.write(bool(stop))
            if cfg.output.gallery and any(r.status not in ("failed",) for r in results if r is not None):
                from ..report import write_report  # one report over every source: people seen by several grouped

                try:
                    job.report = {"path": write_report(out, cfg, models_dir).name}
                except EnhanceError as e:
                    job.report = {"error": str(e)}
                job.write(bool(stop))
    return [r for r in results if r is not None]


def _result(e: Entry, out: Path, status: str, reason: str | None = None) -> RunResult:
    """A source that did not run here: skipped (already done) or failed before it started."""
    return RunResult(status, out, e.name, {}, None, RunStats(), reason)


def _summary(e: Entry, r: RunResult) -> dict:
    """A result as its line in the job's manifest ("complete_with_errors" counts as complete)."""
    status = "complete" if r.status == "complete_with_errors" else r.status
    stats = _earlier(r.out) if status == "skipped" else r.stats.as_dict() if r.timings else {}
    return summary(e, status, stats=stats, reason=r.error)


def _earlier(folder: Path) -> dict:
    from .outdir import read_manifest

    return (read_manifest(folder) or {}).get("stats") or {}


def check_size(src: Source, cfg: Config) -> None:
    """A picture smaller than the smallest face looked for cannot show one: say so before starting. Frames
    above 4K are worth a warning with the memory they take (source.max_pixels refuses larger ones)."""
    if src.width * src.height > LARGE_FRAME:
        log.warning("%s: %dx%d frames (%.1f MP, above 4K) need about %s of memory for this source",
                    clean(src.name), src.width, src.height, src.width * src.height / 1e6,
                    gigabytes(frame_memory(src.width, src.height)))
    if min(src.width, src.height) < cfg.detect.min_face:
        raise InputError(f"{src.name}: picture is {src.width}x{src.height} px, smaller than the smallest face "
                         f"looked for (detect.min_face = {cfg.detect.min_face} px)")


def _run_concurrently(stages: Stages, sources: list[Source | None], targets: list[Path], todo: list[int],
                      stop: StopFlag, jobs: int, items: list[Input], cfg: Config, results: list[RunResult | None],
                      job: JobRecord | None) -> None:
    """Every camera in its own thread; recordings through `jobs` threads; each source's result (a failure
    too: the others go on) into `results` and the job's manifest. Recordings that wait their turn are
    closed (they were opened only to check them) and reopened when it comes, so an archive of hundreds of
    files holds `jobs` decoders, not hundreds."""
    interrupts: list[BaseException] = []
    lock = threading.Lock()
    waiting = deque(i for i in todo if not sources[i].live)
    reopen = len(waiting) > jobs
    for i in waiting if reopen else ():
        sources[i].close()

    def run(i: int) -> None:
        entry = job.sources[i] if job is not None else None
        try:
            item = items[i]
            opened = open_source(item.spec, cfg.source, name=item.name) if reopen and not sources[i].live else None
            with opened or nullcontext(sources[i]) as src:
                result = run_source(stages, src, targets[i], stop)
        except EnhanceError as e:  # this source failed (its manifest says why); the others go on
            result = _result(entry, targets[i], "failed", str(e))
        except Exception as e:  # a bug: its traceback in the log, the source failed, the others go on
            log.error("%s failed", sources[i].name, exc_info=True)
            result = _result(entry, targets[i], "failed", f"{type(e).__name__}: {e}")
        except BaseException as e:  # re-raised in the main thread
            interrupts.append(e)
            stop.set(f"error in {sources[i].name}")
            return
        results[i] = result
        if result.status == "failed" and stages.board.lines is not None:
            stages.board.lines.error(result.error or "failed", sources[i].name)
        if job is not None:
            with lock:
                job.runs[entry.folder] = _summary(entry, result)
                job.write()

    def recordings() -> None:
        while waiting and not stop:
            try:
                i = waiting.popleft()
            except IndexError:  # another thread took the last one
                return
            run(i)

    threads = [threading.Thread(target=run, args=(i,), name=f"source-{i}", daemon=True)
               for i in todo if sources[i].live]
    threads += [threading.Thread(target=recordings, name=f"recordings-{k}", daemon=True)
                for k in range(min(jobs, len(waiting)))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.2)  # short joins keep the main thread free to take signals
    if interrupts:
        raise interrupts[0]
