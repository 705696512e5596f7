"""Joining Ray: a local Ray started for one run, or the user's cluster; and what its nodes are.

A local Ray gets no dashboard, a small object store (the job moves face crops and summaries, kilobytes
each, so it fits a container's small /dev/shm), worker output kept in Ray's log files (not mixed into the
progress view), and its own random auth token in the environment: Ray (2.59 and later) turns token
authentication on for local clusters and would otherwise write ~/.ray/auth_token and log a warning.
A token the user configured (RAY_AUTH_* or ~/.ray/auth_token) is left alone, and so is a cluster's.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..core.errors import EnhanceError

RAY_MISSING = ("--engine ray needs Ray, which is not installed: pip install 'enhance-faces[ray]' "
               "(or: pip install 'ray>=2.60,<3')")
OBJECT_STORE_BYTES = 256 << 20
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
# Ray logs "token authentication is enabled…" here when it turns it on for a new local cluster.
AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


@dataclass
class Cluster:
    """The Ray this job runs on."""

    address: str  # "local" (started for this run) or the address the user gave
    startup_s: float  # ray.init's wall time: starting a local Ray, or connecting
    nodes: list[dict] = field(default_factory=list)  # alive nodes at the start: id, ip, host, cpus, gpus

    def as_dict(self) -> dict:
        return {"address": self.address, "startup_s": round(self.startup_s, 2), "nodes": self.nodes}


def require_ray():  # noqa: ANN201 - the ray module, when installed
    """The `ray` module, or a one-line EnhanceError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise EnhanceError(RAY_MISSING) from None
    return ray


@contextmanager
def connect(address: str | None, cpus: int) -> Iterator[Cluster]:
    """Start a local Ray with `cpus` task slots (address None) or join `address` ("auto" or HOST:PORT)."""
    ray = require_ray()
    restore = _quiet_token() if address is None else {}
    quiet = logging.getLogger(AUTH_LOGGER)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    t = time.perf_counter()
    try:
        if address is None:
            # address "local": a new Ray, never one that `ray start` left running on this machine
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                     log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        _restore(restore)
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        hint = ("; if it uses token authentication, set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to its token"
                if address else "")
        raise EnhanceError(f"cannot start or reach {where}: {one_line(e)}{hint}") from None
    finally:
        quiet.setLevel(level)
    try:
        yield Cluster(address or "local", time.perf_counter() - t, nodes(ray))
    finally:
        ray.shutdown()
        _restore(restore)


def nodes(ray) -> list[dict]:  # noqa: ANN001 - the ray module
    """The cluster's alive nodes: what the job's placement needs and the manifest records."""
    out = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        out.append({"id": n["NodeID"], "ip": n.get("NodeManagerAddress"), "host": n.get("NodeManagerHostname"),
                    "cpus": res.get("CPU", 0), "gpus": res.get("GPU", 0),
                    "object_store_mib": round(res.get("object_store_memory", 0) / (1 << 20)),
                    "resources": {k: v for k, v in res.items() if not k.startswith(("node:", "memory",
                                                                                     "object_store"))}})
    return sorted(out, key=lambda n: n["id"])


def _quiet_token() -> dict[str, str | None]:
    """A random token for this run's own Ray (set before ray.init, which switches token mode on with it);
    returns what to restore afterwards. Nothing is changed when the user has configured a token."""
    if any(os.environ.get(v) for v in AUTH_VARS) or os.path.exists(os.path.expanduser("~/.ray/auth_token")):
        return {}
    restore = {v: os.environ.get(v) for v in AUTH_VARS}
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    return restore


def _restore(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def one_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__
