"""The generator as a Ray actor shared by every recording on a node, and the Enhancer stand-in that feeds it.

One actor per GPU (one per node on CPU nodes) holds the existing `Enhancer` and its `DynamicBatcher`. It is
a threaded actor: each recording's call waits in its own thread, so crops from many recordings meet in the
one batcher and share batches (up to `enhance.batch_size`, waiting at most `enhance.max_wait_ms`). Crops
travel as small uint8 arrays; the actor counts the batches it ran, for the job's manifest.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..core.config import Config

MAX_CALLS = 256  # calls one actor serves at once: one per recording running on its node is plenty


class _Counted:
    """The backend's batch function, counting what the batcher sends it (only its one worker thread calls)."""

    def __init__(self, run_batch: Callable[[np.ndarray], np.ndarray]) -> None:
        self.run_batch, self.batches, self.faces, self.largest = run_batch, 0, 0, 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.run_batch(batch)
        self.batches += 1
        self.faces += len(batch)
        self.largest = max(self.largest, len(batch))
        return out


@ray.remote(max_restarts=-1, max_task_retries=-1, max_concurrency=MAX_CALLS)
class GeneratorActor:
    """The existing Enhancer (backend + DynamicBatcher) behind `enhance(crops)`; restarted if its process dies
    (calls are retried: enhancing is a pure function of the crop)."""

    def __init__(self, cfg: Config, gpu: bool) -> None:
        from ..stages.enhance.stage import LocalGenerator

        if not gpu and cfg.enhance.threads == 0:  # Ray sets OMP_NUM_THREADS=1 in its workers: on a CPU node
            import torch  # the generator should have the machine's cores, as it has on one machine

            torch.set_num_threads(len(os.sched_getaffinity(0)))
        self.generator = LocalGenerator(cfg.enhance, cfg.device)
        self.counted = _Counted(self.generator.batcher.run_batch)
        self.generator.batcher.run_batch = self.counted
        self.node = ray.get_runtime_context().get_node_id()

    def enhance(self, items: list[np.ndarray]) -> list[np.ndarray]:
        """128×128 faces for these LR crops (or packed observations, with track fusion); no flush, so
        concurrent calls coalesce into batches."""
        return self.generator.map(items, flush=False)

    def info(self) -> dict:
        return self.generator.info

    def stats(self) -> dict:
        c = self.counted
        return {"node": self.node, "pid": os.getpid(), "faces": c.faces, "batches": c.batches,
                "mean_batch": round(c.faces / c.batches, 2) if c.batches else None, "largest_batch": c.largest}


def start_generators(cfg: Config, nodes: list[dict]) -> dict[str, list[Any]]:
    """One actor per GPU of every node (one per CPU-only node), pinned there: node id → actor handles.
    The actors take no CPU slot, so they never keep a recording from starting."""
    actors: dict[str, list[Any]] = {}
    for n in nodes:
        gpus = int(n["gpus"])
        pin = NodeAffinitySchedulingStrategy(n["id"], soft=False)
        actors[n["id"]] = [GeneratorActor.options(num_cpus=0, num_gpus=1 if gpus else 0, scheduling_strategy=pin)
                           .remote(cfg, gpus > 0) for _ in range(max(1, gpus))]
    return actors


def generator_stats(actors: dict[str, list[Any]], timeout: float = 30.0) -> dict:
    """Every actor's batch counts and the job's mean batch size (faces per generator call)."""
    handles = [a for group in actors.values() for a in group]
    per = []
    for a in handles:
        try:
            per.append(ray.get(a.stats.remote(), timeout=timeout))
        except (ray.exceptions.RayError, TimeoutError) as e:
            per.append({"error": type(e).__name__})
    faces = sum(s.get("faces", 0) for s in per)
    batches = sum(s.get("batches", 0) for s in per)
    return {"actors": per, "faces": faces, "batches": batches,
            "mean_batch": round(faces / batches, 2) if batches else None}


def wait(ref: Any, timeout: float | None = None) -> Any:
    """The value of an ObjectRef, waited for without `ray.get`: a task blocked in ray.get gives its CPU slot
    back to the scheduler, which would start one more recording than the node was told to run."""
    return ref.future().result(timeout)


class RayGenerator:
    """The `Generator` protocol over a generator actor, so a recording's session runs unchanged inside a Ray
    task: the local `Enhancer` anchors and assesses what the actor returns."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    @functools.cached_property
    def info(self) -> dict:
        """What the actor runs (asked when the session starts: the detector loads meanwhile)."""
        return wait(self.actor.info.remote())

    @property
    def frames(self) -> int:
        return int(self.info.get("fusion_frames") or 0)

    @classmethod
    def near(cls, actors: dict[str, list[Any]], node: str, key: str) -> RayGenerator:
        """The actor on this node (spread by `key` over its GPUs), or any actor if this node has none."""
        pool = actors.get(node) or [a for group in actors.values() for a in group]
        return cls(pool[zlib.crc32(key.encode()) % len(pool)])

    def map(self, items: list[np.ndarray]) -> list[np.ndarray]:
        return wait(self.actor.enhance.remote(items))

    def close(self) -> None:
        """Nothing to finish here: the actor is shared, and the driver ends it with the job."""
