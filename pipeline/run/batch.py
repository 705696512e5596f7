"""What both engines share about a batch of recordings: each recording's run identity, its line in the
job's manifest, and the command's exit code (docs/jobs.md).

A run is identified by its input (path, size and modification time, or its content's sha256 when asked),
the settings that change outputs, the sha256 of the weights it used and the package's version. A folder
holding a finished run of the same identity is skipped; one whose identity differs is redone only with
`--overwrite` (`outdir.claim_job`). Settings that only decide where or how fast the work runs (devices,
threads, batch sizes, back-ends, timeouts, event delivery) are left out, so moving a job to a GPU does not
redo it.
"""

from __future__ import annotations

import hashlib
import os
import signal
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from ..core.config import Config
from ..core.errors import EnhanceError
from ..core.models import find_model, sha256
from ..core.version import __version__
from ..io.sources.probe import split_stream
from ..io.sources.urls import is_live, redact

# Settings (dotted, fnmatch patterns) that change where or how fast a run goes, never what it writes.
EXECUTION_ONLY = ("device", "*.device", "*.threads", "sources", "source.open_timeout_s", "source.read_timeout_s",
                  "source.transport", "source.live_queue", "source.reconnect_*", "enhance.weights",
                  "enhance.backend", "enhance.max_wait_ms", "enhance.max_queue", "enhance.batch_size",
                  "enhance.cpu_precision", "enhance.cuda_compile", "events.*")
# Exit codes, the same for both engines.
EXIT_DONE, EXIT_FAILED, EXIT_NOTHING, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 74, 130
OUTCOMES = {EXIT_DONE: "complete", EXIT_FAILED: "incomplete", EXIT_NOTHING: "failed", EXIT_REFUSED: "refused"}
STATES = ("complete", "skipped", "failed", "interrupted", "pending")  # a recording's state in the job
FINISHED = ("complete", "complete_with_errors")  # run manifest statuses of a finished run


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Entry:
    """One source of a job: `spec` to open, `name` shown, `folder` (OUT/<folder>/), its run identity."""

    spec: str
    name: str
    folder: str
    identity: dict = field(default_factory=dict, compare=False, hash=False)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}; lists stay values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def output_settings(cfg: Config) -> dict[str, Any]:
    """The effective settings that change outputs, as dotted keys (`detect.model`: …)."""
    return {k: v for k, v in sorted(flatten(cfg.to_dict()).items())
            if not any(k == p or fnmatch(k, p) for p in EXECUTION_ONLY)}


def weights(cfg: Config, models_dir: str | Path | None) -> dict[str, str]:
    """The sha256 of the detector and (when enhancing) the generator a run of `cfg` loads."""
    out = {"detector": sha256(find_model(cfg.detect.model, models_dir))}
    if cfg.enhance.policy != "none":
        from ..stages.enhance.stage import default_weights

        path = Path(cfg.enhance.weights).expanduser() if cfg.enhance.weights else default_weights(cfg.enhance.fusion)
        if not path.is_file():
            raise EnhanceError(f"generator weights not found: {path}")
        out["generator"] = sha256(path)
    return out


def input_identity(spec: str, content: bool = False) -> dict[str, Any]:
    """A file by absolute path, size and modification time (or its content's sha256); a folder of images by
    its files'; a camera by its address (no password)."""
    if is_live(spec):
        return {"uri": redact(spec)}
    file, stream = split_stream(spec)
    path = Path(file).expanduser()
    out: dict[str, Any] = {"path": os.path.abspath(path)}
    if stream is not None:
        out["stream"] = stream
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        stats = [p.stat() for p in files]
    except OSError:
        return out  # opening it says what is wrong
    out["size"] = sum(s.st_size for s in stats)
    if content:
        h = hashlib.sha256()
        for p in files:
            h.update(sha256(p).encode())
        out["sha256"] = h.hexdigest()
    else:
        out["mtime_ns"] = max((s.st_mtime_ns for s in stats), default=0)
    return out


def identity(spec: str, settings: dict, weights_sha: dict, content: bool = False) -> dict[str, Any]:
    """The run identity of `spec` under `settings` (`output_settings`) and `weights_sha` (`weights`)."""
    return {"input": input_identity(spec, content), "settings": settings, "weights": weights_sha,
            "version": __version__}


def differences(old: dict | None, new: dict) -> list[str]:
    """The names that differ between two identities: a setting by its key (`detect.model`), else
    `input.size`, `weights.generator`, `version`, … ; "identity" when the old run recorded none."""
    if not isinstance(old, dict) or not old:
        return ["identity (the earlier run recorded none)"]
    a, b = flatten(old), flatten(new)
    if "input.sha256" in b and "input.sha256" not in a:  # asked for content now: compare what both have
        a.pop("input.mtime_ns", None)
        b["input.mtime_ns"] = a.get("input.mtime_ns")
    if "input.sha256" in a and "input.sha256" not in b:
        a.pop("input.sha256")
    names = [k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    return [k.removeprefix("settings.") for k in names]


def describe(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def summary(entry: Entry, status: str, node: dict | None = None, stats: dict | None = None,
            reason: str | None = None, earlier: dict | None = None) -> dict:
    """One recording's line in the job's manifest: state, counts, why it failed, its identity."""
    s = stats or {}
    out = {"name": entry.folder, "input": entry.spec, "status": status, "node": earlier or node or {},
           **{k: s.get(k) for k in SUMMARY_STATS}}
    if reason:
        out["reason"] = reason
    out["identity"] = entry.identity
    return out


SUMMARY_STATS = ("frames", "faces", "tracks", "enhanced", "wall_s", "fps", "skipped_frames", "dropped_frames",
                 "reconnects")  # of a run's manifest `stats`, what the job's manifest repeats per run


def exit_code(states: list[str], signum: int | None = None) -> int:
    """0 all done or skipped, 1 some failed, 128 + the signal's number when stopped (130 SIGINT, 143 SIGTERM).
    (2 nothing could start and 74 output refused are raised as errors before anything runs.)"""
    if signum:
        return 128 + signum
    if "interrupted" in states:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if "failed" in states else EXIT_DONE


def outcome(code: int) -> str:
    """The final progress line's word for an exit code."""
    return "interrupted" if code > 128 else OUTCOMES.get(code, "failed")


def signal_number(name: str | None) -> int | None:
    """SIGINT → 2; None for anything that is not a signal's name."""
    return signal.Signals[name].value if name in signal.Signals.__members__ else None


JOB_KIND = "job"


@dataclass
class JobRecord:
    """A job of several sources as its driver knows it; `write` puts it in `OUT/manifest.json`.

    Each run keeps its full manifest in `OUT/<folder>/manifest.json`; this one says what happened to all of
    them (state, counts, the one-line reason a recording failed, its identity). It is replaced atomically at
    the start, after every recording and at the end. `"kind": "job"` tells it apart from a run's manifest.
    """

    out: Path
    inputs: list[str]
    cfg: Config
    sources: list[Entry]  # recordings and cameras, in input order
    engine: str = "local"
    started: str = field(default_factory=now)
    cluster: dict | None = None
    generator: dict | None = None
    report: dict = field(default_factory=dict)
    wall_s: float = 0.0
    runs: dict[str, dict] = field(default_factory=dict)  # folder → summary

    def outcome(self, entry: Entry) -> dict:
        return self.runs.get(entry.folder) or summary(entry, "pending")

    def states(self) -> list[str]:
        return [self.outcome(e)["status"] for e in self.sources]

    def counts(self) -> dict[str, int]:
        states = self.states()
        return {"total": len(states), **{k: states.count(k) for k in STATES if k in states or k != "pending"}}

    def status(self, stopped: bool) -> str:
        c = self.counts()
        if stopped or c.get("interrupted"):
            return "interrupted"
        if c.get("pending"):
            return "running"
        return "incomplete" if c.get("failed") else "complete"

    def totals(self) -> dict:
        """Frames, faces, … processed by this job (recordings skipped as already done not counted)."""
        ran = [s for s in self.runs.values() if s["status"] in ("complete", "interrupted")]
        sums = {k: sum(s.get(k) or 0 for s in ran) for k in ("frames", "faces", "tracks", "enhanced")}
        done = sum(1 for s in self.runs.values() if s["status"] == "complete")
        wall = self.wall_s
        return {**sums, "wall_s": round(wall, 2), "fps": round(sums["frames"] / wall, 2) if wall > 0 else None,
                "recordings_per_min": round(60 * done / wall, 2) if wall > 0 else None}

    def write(self, stopped: bool = False) -> Path:
        from ..io.sinks.manifest import PROVENANCE, write_json

        doc = {
            "kind": JOB_KIND,
            "provenance": PROVENANCE,
            "status": self.status(stopped),
            "started": self.started,
            "ended": now(),
            "tool": f"enhance {__version__}",
            "engine": self.engine,
            "inputs": self.inputs,
            "settings": self.cfg.to_dict(),
            "cluster": self.cluster,
            "recordings": self.counts(),
            "stats": self.totals(),
            "generator": self.generator,
            "report": self.report,
            "runs": [self.outcome(e) for e in self.sources],
        }
        path = self.out / "manifest.json"
        write_json(path, doc)
        return path
