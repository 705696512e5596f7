"""The job's own `OUT/manifest.json`: every recording's outcome (node, attempt, counts, or the one-line
reason it failed), the cluster it ran on and its start-up cost, the generator actors' batch sizes.

Each run keeps its full manifest in `OUT/<name>/manifest.json`; this one says what happened to all of them.
It is replaced atomically, at the start (everything `pending`), after every recording, and at the end.
`"kind": "job"` tells it apart from a run's manifest (the report reads the runs in the subfolders).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..core.version import __version__
from ..core.config import Config
from ..io.sinks.manifest import PROVENANCE
from .recording import Recording, summary

JOB_KIND = "job"
OUTCOMES = ("complete", "skipped", "failed", "interrupted", "pending")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class JobRecord:
    """The job as the driver knows it; `write` puts it on disk."""

    out: Path
    inputs: list[str]
    cfg: Config
    sources: list[Recording]  # recordings and cameras, in input order
    started: str = field(default_factory=_now)
    cluster: dict | None = None
    generator: dict | None = None
    report: dict = field(default_factory=dict)
    wall_s: float = 0.0
    runs: dict[str, dict] = field(default_factory=dict)  # folder → summary

    def outcome(self, rec: Recording) -> dict:
        return self.runs.get(rec.folder) or summary(rec, "pending", {})

    def counts(self) -> dict[str, int]:
        states = [self.outcome(r)["status"] for r in self.sources]
        return {"total": len(states), **{k: states.count(k) for k in OUTCOMES if k in states or k != "pending"}}

    def status(self, stopped: bool) -> str:
        c = self.counts()
        if stopped or c.get("interrupted"):
            return "interrupted"
        if c.get("pending"):
            return "running"
        return "incomplete" if c.get("failed") else "complete"

    def totals(self) -> dict:
        """Frames, faces, … processed by this job (recordings skipped as already done not counted)."""
        ran = [s for s in self.runs.values() if s["status"] in ("complete", "interrupted")]  # cameras end so
        sums = {k: sum(s.get(k) or 0 for s in ran) for k in ("frames", "faces", "tracks", "enhanced")}
        done = sum(1 for s in self.runs.values() if s["status"] == "complete")
        wall = self.wall_s
        return {**sums, "wall_s": round(wall, 2), "fps": round(sums["frames"] / wall, 2) if wall > 0 else None,
                "recordings_per_min": round(60 * done / wall, 2) if wall > 0 else None}

    def write(self, stopped: bool = False) -> Path:
        doc = {
            "kind": JOB_KIND,
            "provenance": PROVENANCE,
            "status": self.status(stopped),
            "started": self.started,
            "ended": _now(),
            "tool": f"enhance {__version__}",
            "engine": "ray",
            "inputs": self.inputs,
            "settings": self.cfg.to_dict(),
            "cluster": self.cluster,
            "recordings": self.counts(),
            "stats": self.totals(),
            "generator": self.generator,
            "report": self.report,
            "runs": [self.outcome(r) for r in self.sources],
        }
        path = self.out / "manifest.json"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path
