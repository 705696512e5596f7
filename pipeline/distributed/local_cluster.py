"""Several Ray nodes on this one machine, for the tests and the benchmark: `ray start --head` and
`ray start --address=…`, each with its own CPUs and resources, as they would run on separate machines.

Each node is one `ray start --block` process in its own process group, with its own temp folder (so no
other Ray on the machine is touched and `ray.init()` elsewhere never finds it) and token authentication
with a token made for it (`env` is what a driver needs to join). Stopping ends exactly these processes,
by their own PIDs: never `ray stop`, which ends every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .cluster import OBJECT_STORE_BYTES

STARTED = "Ray runtime started"  # what `ray start` prints once its node is up and registered
STOP_WAIT_S = 30.0


class LocalCluster:
    """`with LocalCluster([{"cpus": 1}, {"cpus": 1, "resources": {"second": 1}}]) as c:` → c.address, c.env."""

    def __init__(self, nodes: list[dict], start_timeout: float = 180.0) -> None:
        self.specs, self.start_timeout = nodes, start_timeout
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.address = ""
        self.startup_s = 0.0
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env.pop("RAY_ADDRESS", None)
        self.tmp = Path(tempfile.mkdtemp(prefix="enh-ray-", dir="/tmp"))  # short: Ray's socket paths have a limit

    def __enter__(self) -> LocalCluster:
        t = time.perf_counter()
        try:
            for i, spec in enumerate(self.specs):
                self._start(i, spec)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - t
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, i: int, spec: dict) -> None:
        args = ["start", "--block", f"--num-cpus={spec.get('cpus', 1)}", f"--temp-dir={self.tmp}",
                f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats",
                "--dashboard-agent-listen-port=0"]
        if spec.get("resources"):
            args.append(f"--resources={json.dumps(spec['resources'])}")
        args += ["--head", "--port=0", "--include-dashboard=false"] if i == 0 else [f"--address={self.address}"]
        log = self.tmp / f"node{i}.log"
        self.logs.append(log)
        with open(log, "w", encoding="utf-8") as fh:
            self.procs.append(subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", *args], stdout=fh,
                                               stderr=subprocess.STDOUT, env=self.env, start_new_session=True))
        deadline = time.monotonic() + self.start_timeout
        while STARTED not in (text := log.read_text(encoding="utf-8", errors="replace")):
            if self.procs[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start (node {i}) did not come up:\n{text[-3000:]}")
            time.sleep(0.2)
        if i == 0:
            found = re.search(r"--address='([^']+)'", text)
            if not found:
                raise RuntimeError(f"no address in the output of ray start --head:\n{text[-3000:]}")
            self.address = found.group(1)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        """SIGTERM each `ray start --block` (it ends its node's processes), then SIGKILL whatever of its
        process group is left; worker nodes first, the head last."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
