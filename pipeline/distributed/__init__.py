"""Scale-out on Ray: one Ray task per recording, one generator actor per GPU (one per node on CPU nodes), one
actor per live camera, and a driver that shows one progress view, gathers every run into a top-level
manifest and writes one report over all of them.

`job` is the driver; `recording`, `camera` and `generator` are what runs on the nodes; `cluster` starts or
joins Ray; `local_cluster` runs extra nodes on this machine (tests, the benchmark). Ray is optional
(`pip install 'enhance-faces[ray]'`): nothing is imported from it until `--engine ray` runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.config import Config
    from ..run.progress import ProgressSettings


def process_on_ray(inputs: list[str], out: Path, cfg: Config, models_dir: str | Path | None = None,
                   address: str | None = None, jobs: int | None = None,
                   progress: bool | str | ProgressSettings = True, overwrite: bool = False,
                   content_hash: bool = False) -> int:
    """`enhance-faces process … --engine ray`: the whole job on Ray; returns the command's exit code."""
    from .cluster import require_ray

    require_ray()  # one line saying how to install it, before anything imports it
    from .job import run_job

    return run_job(inputs, out, cfg, models_dir, address=address, jobs=jobs, progress=progress, overwrite=overwrite,
                   content_hash=content_hash)
