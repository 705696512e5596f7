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

from ..config import Config
from ..errors import EnhanceError
from ..session import run_source
from ..sources import open_source
from ..stop import StopFlag
from .generator import RemoteEnhancer
from .progress import RemoteBoard
from .recording import NodeStages, Recording, here, summary


@ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1, max_concurrency=2)
class CameraActor:
    """One camera for as long as the job runs; `stop` (from the driver) ends it cleanly."""

    def __init__(self, cam: Recording, out_root: str, cfg: Config, models_dir: str | None,
                 generators: dict[str, list[Any]] | None, progress: Any) -> None:
        self.cam, self.root, self.cfg, self.models_dir = cam, Path(out_root), cfg, models_dir
        self.generators, self.progress = generators, progress
        self.stopping = StopFlag()

    def run(self) -> dict:
        """Process the camera until it gives up reconnecting or `stop` is called; returns its summary."""
        cam, node = self.cam, here()
        folder = cam.folder
        if ray.get_runtime_context().was_current_actor_reconstructed:
            folder = _next_free(self.root, cam.folder)
        node["restarted"] = folder != cam.folder
        rec = Recording(cam.spec, cam.name, folder)
        try:
            with open_source(cam.spec, self.cfg.source, name=cam.name) as source:
                enhancer = RemoteEnhancer.near(self.generators, node["id"], folder) if self.generators else None
                stages = NodeStages(self.cfg, self.models_dir, enhancer, RemoteBoard(self.progress, folder), node)
                try:
                    result = run_source(stages, source, self.root / folder, self.stopping)
                finally:
                    stages.close()
        except EnhanceError as e:  # unreachable after `source.reconnect_attempts_at_start` tries
            return summary(rec, "failed", node, reason=str(e))
        return summary(rec, result.status, node, stats=result.stats.as_dict())

    def stop(self, reason: str = "stopped by the driver") -> None:
        self.stopping.set(reason)


def _next_free(root: Path, folder: str) -> str:
    k = 2
    while (root / f"{folder}.r{k}").exists():
        k += 1
    return f"{folder}.r{k}"
