"""One recording as one Ray task: decode, detect, track, align, policy and sinks run on the node that reads
the file, the generator is the node's shared actor, and the output appears in `OUT/<name>/` whole or not
at all.

The session writes into `OUT/.partial/<name>/<token>/` and the folder is renamed into place only when the
run is complete. So a worker killed mid-recording (Ray retries the task) leaves nothing half-written in
`OUT/<name>/` and nothing twice: the retry clears the dead attempt's folder and starts from scratch. A
recording whose manifest already says it finished with the same run identity (`run.batch.identity`) is
skipped; an unfinished one is redone and replaces it whole. A bad file is a one-line `failed` result, never
a retry.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import ray

from ..core.config import Config
from ..core.errors import EnhanceError
from ..io.sources import open_source
from ..run.batch import FINISHED, SUMMARY_STATS, Entry, differences, summary
from ..run.build import Stages
from ..run.session import run_source
from ..run.stop import StopFlag
from .generator import RayGenerator
from .progress import RemoteBoard

PARTIAL = ".partial"  # OUT/.partial/<name>/: attempts in progress; hidden, so no report mistakes it for a run
ATTEMPTS = "attempts.jsonl"  # in OUT/.partial/<name>/: one line per attempt (node, pid), kept across retries
MAX_RETRIES = 3  # a recording whose worker dies is tried this many more times (Ray task retries)
Recording = Entry  # what the driver sends: `spec` is an absolute path that every node sees (shared storage)
__all__ = ["MAX_RETRIES", "PARTIAL", "Recording", "SUMMARY_STATS", "finished", "run_recording", "summary"]


def finished(out: Path, identity: dict) -> dict | None:
    """The manifest of a finished run of `identity` in `out`, or None (no run, an unfinished one, another
    identity)."""
    try:
        m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("status") not in FINISHED or differences(m.get("identity"), identity):
        return None
    return m


def here() -> dict:
    """Where this task runs, for its manifest and the job's."""
    return {"id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
            "host": socket.gethostname(), "pid": os.getpid()}


class NodeStages(Stages):
    """The shared stages as one task builds them: the node's generator actor instead of a local generator,
    progress sent to the driver, and the node recorded in the run's manifest."""

    def __init__(self, cfg: Config, models_dir: str | Path | None, generator: RayGenerator | None,
                 board: RemoteBoard, node: dict, identity: dict | None = None) -> None:
        super().__init__(cfg, models_dir, progress=False, generator=generator)
        self.board, self.node = board, node  # type: ignore[assignment]  # ProgressBoard's interface
        self.identity = identity

    def info(self, inputs: list[str]) -> dict:
        return {**super().info(inputs), "node": self.node, "identity": self.identity}


@ray.remote(max_retries=MAX_RETRIES, scheduling_strategy="SPREAD")
def run_recording(rec: Recording, out_root: str, cfg: Config, models_dir: str | None,
                  generators: dict[str, list[Any]] | None, progress: Any) -> dict:
    """Process one recording into OUT/<folder>/; returns its summary (never raises for a bad file)."""
    root = Path(out_root)
    final = root / rec.folder
    node = here()
    work = root / PARTIAL / rec.folder
    done = finished(final, rec.identity)
    if done is not None:  # the driver skips finished ones: this one was finished by an attempt that died after
        shutil.rmtree(work, ignore_errors=True)
        return summary(rec, "complete", node, stats=done.get("stats") or {}, earlier=done.get("node"))
    node["attempt"] = start_attempt(work, node)
    tmp = work / uuid.uuid4().hex[:12]
    board = RemoteBoard(progress, rec.folder)
    try:
        with open_source(rec.spec, cfg.source, name=rec.name) as source:
            generator = RayGenerator.near(generators, node["id"], rec.folder) if generators else None
            stages = NodeStages(cfg, models_dir, generator, board, node, rec.identity)
            if stages.catalog is not None:  # the catalogue names the folder the run is published to
                stages.catalog.publish_as(tmp, final)
            try:
                result = run_source(stages, source, tmp, StopFlag())
            finally:
                stages.close()
            stages.network.record([tmp / "manifest.json"])  # the MQTT/webhook counters once closed
    except EnhanceError as e:  # bad input: reported, not retried
        shutil.rmtree(work, ignore_errors=True)
        return summary(rec, "failed", node, reason=str(e))
    except BaseException:  # a bug or a cancellation (neither is retried): nothing of it stays
        shutil.rmtree(work, ignore_errors=True)
        raise
    publish(tmp, final)
    shutil.rmtree(work, ignore_errors=True)
    status = "complete" if result.status in FINISHED else result.status
    return summary(rec, status, node, stats=result.stats.as_dict(), reason=result.error)


def start_attempt(work: Path, node: dict) -> int:
    """Clear what dead attempts left, log this one; returns its number (1 on the first try)."""
    work.mkdir(parents=True, exist_ok=True)
    for old in work.iterdir():
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    log = work / ATTEMPTS
    try:
        n = 1 + sum(1 for line in log.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError:
        n = 1
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps({"attempt": n, "node": node["id"], "pid": node["pid"], "time": time.time()}) + "\n")
    return n


def publish(tmp: Path, final: Path) -> None:
    """Move a complete run into place by renames on the same file system; an unfinished folder already
    there (an older, interrupted run) is replaced whole."""
    old = None
    if final.exists():
        old = tmp.with_name(tmp.name + ".old")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
