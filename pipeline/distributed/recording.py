"""One recording as one Ray task: decode, detect, track, align, policy and sinks run on the node that reads
the file, the generator is the node's shared actor, and the output appears in `OUT/<name>/` whole or not
at all.

The session writes into `OUT/.partial/<name>/<token>/` and the folder is renamed into place only when the
run is complete. So a worker killed mid-recording (Ray retries the task) leaves nothing half-written in
`OUT/<name>/` and nothing twice: the retry clears the dead attempt's folder and starts from scratch. A
recording whose manifest already says `complete` (for the same input) is skipped; an unfinished one is
redone and replaces it whole. A bad file is a one-line `failed` result, never a retry.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from ..core.config import Config
from ..core.errors import EnhanceError
from ..run.session import run_source
from ..io.sources import open_source
from ..run.build import Stages
from ..run.stop import StopFlag
from .generator import RemoteEnhancer
from .progress import RemoteBoard

PARTIAL = ".partial"  # OUT/.partial/<name>/: attempts in progress; hidden, so no report mistakes it for a run
ATTEMPTS = "attempts.jsonl"  # in OUT/.partial/<name>/: one line per attempt (node, pid), kept across retries
MAX_RETRIES = 3  # a recording whose worker dies is tried this many more times (Ray task retries)
SUMMARY_STATS = ("frames", "faces", "tracks", "enhanced", "wall_s", "fps", "skipped_frames", "dropped_frames",
                 "reconnects")  # of a run's manifest `stats`, what the job's manifest repeats per run


@dataclass(frozen=True)
class Recording:
    """What the driver sends: `spec` is an absolute path that every node sees (shared storage)."""

    spec: str
    name: str  # shown name: the path inside the folder it was found in, or the file name
    folder: str  # OUT/<folder>/


def finished(out: Path, spec: str) -> dict | None:
    """The manifest of a complete run of `spec` in `out`, or None (no run, an unfinished one, another input)."""
    try:
        m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("status") == "complete" and m.get("inputs") == [spec] else None


def here() -> dict:
    """Where this task runs, for its manifest and the job's."""
    return {"id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
            "host": socket.gethostname(), "pid": os.getpid()}


class NodeStages(Stages):
    """The shared stages as one task builds them: the node's generator actor instead of a local generator,
    progress sent to the driver, and the node recorded in the run's manifest."""

    def __init__(self, cfg: Config, models_dir: str | Path | None, enhancer: RemoteEnhancer | None,
                 board: RemoteBoard, node: dict) -> None:
        super().__init__(cfg, models_dir, progress=False, enhancer=enhancer)
        self.board, self.node = board, node  # type: ignore[assignment]  # ProgressBoard's interface

    def info(self, inputs: list[str]) -> dict:
        return {**super().info(inputs), "node": self.node}


@ray.remote(max_retries=MAX_RETRIES, scheduling_strategy="SPREAD")
def run_recording(rec: Recording, out_root: str, cfg: Config, models_dir: str | None,
                  generators: dict[str, list[Any]] | None, progress: Any) -> dict:
    """Process one recording into OUT/<folder>/; returns its summary (never raises for a bad file)."""
    root = Path(out_root)
    final = root / rec.folder
    node = here()
    work = root / PARTIAL / rec.folder
    done = finished(final, rec.spec)
    if done is not None:  # the driver skips finished ones: this one was finished by an attempt that died after
        shutil.rmtree(work, ignore_errors=True)
        return summary(rec, "complete", node, stats=done.get("stats") or {}, earlier=done.get("node"))
    node["attempt"] = start_attempt(work, node)
    tmp = work / uuid.uuid4().hex[:12]
    board = RemoteBoard(progress, rec.folder)
    try:
        with open_source(rec.spec, cfg.source, name=rec.name) as source:
            enhancer = RemoteEnhancer.near(generators, node["id"], rec.folder) if generators else None
            stages = NodeStages(cfg, models_dir, enhancer, board, node)
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
    return summary(rec, "complete", node, stats=result.stats.as_dict())


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


def summary(rec: Recording, status: str, node: dict, stats: dict | None = None, reason: str | None = None,
            earlier: dict | None = None) -> dict:
    """One recording's line in the job's manifest."""
    s = stats or {}
    out = {"name": rec.folder, "input": rec.spec, "status": status, "node": earlier or node,
           **{k: s.get(k) for k in SUMMARY_STATS}}
    if reason:
        out["reason"] = reason
    return out
