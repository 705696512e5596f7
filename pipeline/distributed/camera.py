"""A live camera as a Ray actor: the same `LiveSource` and session as on one machine — reconnects with
backoff and jitter, tracks ended at a disconnect, rolling video segments, `events.jsonl` — writing straight
into `OUT/<name>/` (a live run is never "complete", so nothing waits to be renamed).

Ray restarts the actor if its process dies and calls `run` again; the new incarnation writes to
`OUT/<name>.r2/` (then `.r3`, …) so nothing the first one wrote is overwritten, and the report groups both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray

from ..core.config import Config
from ..core.errors import EnhanceError
from ..io.sources import open_source
from ..run.session import run_source
from ..run.stop import StopFlag
from .generator import RayGenerator
from .progress import RemoteBoard
from .recording import NodeStages, Recording, here, summary


@ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1, max_concurrency=2)
class CameraActor:
    """One camera for as long as the job runs; `stop` (from the driver) ends it cleanly. Everything comes
    with `run`, not the constructor: Ray keeps a running call's arguments for its retry on a restarted
    actor, but not always a constructor's (ray-project/ray#53727)."""

    def __init__(self) -> None:
        self.stopping = StopFlag()

    def run(self, cam: Recording, out_root: str, cfg: Config, models_dir: str | None,
            generators: dict[str, list[Any]] | None, progress: Any) -> dict:
        """Process the camera until it gives up reconnecting or `stop` is called; returns its summary."""
        root, node = Path(out_root), here()
        folder = cam.folder
        if ray.get_runtime_context().was_current_actor_reconstructed:
            folder = _next_free(root, cam.folder)
        rec = Recording(cam.spec, cam.name, folder)
        try:
            with open_source(cam.spec, cfg.source, name=cam.name) as source:
                generator = RayGenerator.near(generators, node["id"], folder) if generators else None
                stages = NodeStages(cfg, models_dir, generator, RemoteBoard(progress, folder), node)
                try:
                    result = run_source(stages, source, root / folder, self.stopping)
                finally:
                    stages.close()
                stages.network.record([root / folder / "manifest.json"])  # the MQTT/webhook counters once closed
        except EnhanceError as e:  # unreachable after `source.reconnect_attempts_at_start` tries
            return {**summary(rec, "failed", node, reason=str(e)), "folders": _written(cam.folder, folder)}
        done = summary(rec, result.status, node, stats=result.stats.as_dict())
        return {**done, "folders": _written(cam.folder, folder)}

    def stop(self, reason: str = "stopped by the driver") -> None:
        self.stopping.set(reason)


def _written(first: str, last: str) -> list[str]:
    """The folders this camera wrote: its own, then one per restart of its actor (`.r2`, … up to `last`)."""
    n = int(last.rsplit(".r", 1)[1]) if last != first else 1
    return [first] + [f"{first}.r{k}" for k in range(2, n + 1)]


def _next_free(root: Path, folder: str) -> str:
    k = 2
    while (root / f"{folder}.r{k}").exists():
        k += 1
    return f"{folder}.r{k}"
