"""The runner: source → detect → track → align → enhance → sinks, for every input of a command.

The stages are built once (`Stages`) and shared; each source gets its own `Session` (`run_source`), one
thread per source when there are several (every camera at once, recordings `jobs` at a time). The output
folder is locked for the whole run and never mixes runs (`outdir.claim`). Stopping (SIGINT/SIGTERM) during start-up ends the command at once (nothing written
yet); later it ends the frame loops, and everything after them — ending open tracks, closing the video,
writing the manifest — always runs, so an interrupted run leaves playable, listed files.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import ExitStack, nullcontext
import logging
from pathlib import Path

from ..core.config import Config
from ..core.errors import EnhanceError, InputError
from .inputs import default_jobs, expand, folder_names, not_outputs
from .outdir import FolderLock, claim
from .progress import ProgressSettings
from .session import RunResult, prepare_out, removed_if_unused, run_source
from ..io.sources import Source, open_source
from ..io.sources.base import LARGE_FRAME, frame_memory, gigabytes
from ..core.text import clean
from .build import Stages
from .stop import StopFlag

log = logging.getLogger(__name__)


def process(inputs: list[str], out: Path, cfg: Config, models_dir: str | Path | None = None,
            progress: bool | str | ProgressSettings = True, overwrite: bool = False,
            jobs: int | None = None) -> list[RunResult]:
    """Process every input; one input writes into `out`, several (or a `sources:` list) into `out/<name>/`.

    A folder of recordings or a list file stands for the inputs in it. Several sources run at once, one
    thread each (every camera; at most `jobs` recordings, default: what the machine can hold), sharing
    the detector and the generator; one report at the top then groups the people seen by all of them.
    `overwrite`: replace a run already in `out`. `progress`: True/"auto", "json" (JSON lines on stderr),
    False/"off", or `ProgressSettings` (mode, interval).
    """
    named = [(i.name, i.spec) for i in expand(inputs, out=out)] + [(c.name or None, c.uri) for c in cfg.sources]
    if not named:
        raise EnhanceError("no input: give INPUT on the command line or a `sources:` list in the config")
    not_outputs([spec for _, spec in named], out)
    stop = StopFlag()
    with stop.installed(), ExitStack() as opened:
        opened.enter_context(removed_if_unused(out))  # a start that fails leaves no empty folder behind
        # Open every source first, so a bad input fails before any work is done (or any old run is removed).
        sources = [opened.enter_context(open_source(spec, cfg.source, name=name)) for name, spec in named]
        for src in sources:
            check_size(src, cfg)
        opened.enter_context(claim(prepare_out(out), overwrite))
        stages = Stages(cfg, models_dir, progress)
        opened.callback(stages.close)
        targets = _targets(sources, out, cfg)
        for t in targets:
            if t != out:
                opened.enter_context(FolderLock(prepare_out(t)))
        stop.started()
        if len(sources) == 1:
            results = [run_source(stages, sources[0], targets[0], stop)]
        else:
            largest = max((s.width * s.height for s in sources if not s.live), default=0)
            results = _run_concurrently(stages, sources, targets, stop, jobs or default_jobs(largest), named, cfg)
            if cfg.output.gallery:  # one report over every camera: people seen by several cameras are grouped
                from ..report import write_report

                write_report(out, cfg, models_dir)
        stages.network.close()  # what is still queued for a broker or endpoint that went away is lost now:
        stages.network.record(r.out / "manifest.json" for r in results)  # counted in every manifest
    return results


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


def _targets(sources: list[Source], out: Path, cfg: Config) -> list[Path]:
    """`out` for a single input, else `out/<name>/` per source (names made unique)."""
    if len(sources) == 1 and not cfg.sources:
        return [out]
    cameras = {c.name for c in cfg.sources}
    return [out / n for n in folder_names([(s.name, s.live or s.name in cameras) for s in sources])]


def _run_concurrently(stages: Stages, sources: list[Source], targets: list[Path], stop: StopFlag, jobs: int,
                      named: list[tuple[str | None, str]], cfg: Config) -> list[RunResult]:
    """Every camera in its own thread; recordings through `jobs` threads. Recordings that wait their turn
    are closed (they were opened only to check them) and reopened when it comes, so an archive of
    hundreds of files holds `jobs` decoders, not hundreds."""
    results: list[RunResult | None] = [None] * len(sources)
    errors: list[BaseException] = []
    waiting = deque(i for i, s in enumerate(sources) if not s.live)
    reopen = len(waiting) > jobs
    for i in waiting if reopen else ():
        sources[i].close()

    def run(i: int) -> None:
        try:
            name, spec = named[i]
            opened = open_source(spec, cfg.source, name=name) if reopen and not sources[i].live else None
            with opened or nullcontext(sources[i]) as src:
                results[i] = run_source(stages, src, targets[i], stop)
        except BaseException as e:  # re-raised in the main thread
            errors.append(e)
            stop.set(f"error in {sources[i].name}")

    def recordings() -> None:
        while waiting and not stop:
            try:
                i = waiting.popleft()
            except IndexError:  # another thread took the last one
                return
            run(i)

    threads = [threading.Thread(target=run, args=(i,), name=f"source-{i}", daemon=True)
               for i, s in enumerate(sources) if s.live]
    threads += [threading.Thread(target=recordings, name=f"recordings-{k}", daemon=True)
                for k in range(min(jobs, len(waiting)))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.2)  # short joins keep the main thread free to take signals
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]
