"""Frames processed per live camera per second: N cameras from the RTSP test server (tests/support/rtsp.py), one
`enhance-faces process` run for S seconds, read from its JSON progress lines (one a second).

    PYTHONPATH=$PWD python benchmarks/live/throughput.py --cameras 4 --seconds 200 --json benchmarks/live/4cams.json

Counts per 2-second window and camera: frames processed, and frames that arrived (processed + dropped, as
the progress line last saw them). The test camera sends its 30 frames a second all the time, so a stall is
a window where a camera processed 0 frames; a dip is a window whose all-camera total is below 80% of the
run's mean. Each camera's manifest adds the time its report refreshes took ("refresh"). The machine's load average (and its CPU count) is recorded beside them:
the figures mean little without it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from support import rtsp  # noqa: E402  (tests/support/rtsp.py: the RTSP test camera)

MODELS = ROOT.parent / "shared" / "models"
WINDOW_S = 2.0
WARM_UP_S = 20.0  # models loading and the first connections: not counted


def measure(cameras: int, seconds: float, extra: list[str], root: Path = ROOT) -> dict:
    mounts = {f"cam{i}": rtsp.OFFICE for i in range(cameras)}
    with rtsp.RtspServer(mounts, loop=True) as server, tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(root / "run.py"), "process", *(server.url(m) for m in mounts),
               "--out", str(Path(tmp) / "o"), "--models", str(MODELS), "--progress", "json",
               "--progress-interval", "1", *extra]
        load_before = os.getloadavg()
        env = {**os.environ, "PYTHONPATH": str(root)}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=root, env=env)
        lines: list[dict] = []
        started = time.monotonic()
        assert proc.stderr is not None
        for raw in proc.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            line["t"] = time.monotonic() - started  # when it arrived here; elapsed_s is the run's own clock
            lines.append(line)
            running = [x for x in lines if x.get("state", x.get("progress")) == "running"]
            if running and running[-1]["elapsed_s"] - running[0]["elapsed_s"] >= seconds + WARM_UP_S:
                proc.send_signal(signal.SIGINT)
                break
        proc.communicate(timeout=300)
        load_after = os.getloadavg()
        timings = {}
        for m in sorted((Path(tmp) / "o").glob("*/manifest.json")):
            data = json.loads(m.read_text())
            timings[m.parent.name] = {k: data.get("timings", {}).get(k) for k in ("refresh", "report", "detect")}
    return {"cameras": cameras, "seconds": seconds, "command": cmd[1:], "lines": lines, "timings": timings,
            "load_before": load_before, "load_after": load_after, "cpus": os.cpu_count(), "rc": proc.returncode}


def windows(raw: dict) -> dict:
    """Per camera: frames processed and arrived in each 2-s window after the warm-up."""
    running = [x for x in raw["lines"] if x.get("state", x.get("progress")) == "running"]
    t0 = running[0]["elapsed_s"] + WARM_UP_S
    samples = [x for x in running if x["elapsed_s"] >= t0]
    names = [s["source"] for s in samples[0]["sources"]]
    per: dict[str, dict[str, list[float]]] = {n: {"processed": [], "arrived": []} for n in names}
    edges = [samples[0]]
    for s in samples[1:]:
        if s["elapsed_s"] - edges[-1]["elapsed_s"] >= WINDOW_S - 1e-6:
            edges.append(s)
    for a, b in zip(edges, edges[1:]):
        span = b["elapsed_s"] - a["elapsed_s"]
        for sa, sb in zip(a["sources"], b["sources"]):
            done = sb["frames"] - sa["frames"]
            came = done + sb["dropped"] - sa["dropped"]
            per[sa["source"]]["processed"].append(done * WINDOW_S / span)
            per[sa["source"]]["arrived"].append(came * WINDOW_S / span)
    return per


def summarize(raw: dict) -> dict:
    per = windows(raw)
    totals = [sum(v) for v in zip(*(c["processed"] for c in per.values()))]
    mean = sum(totals) / len(totals)
    stalls = sum(1 for c in per.values() for p in c["processed"] if p == 0)
    dips = [i * WINDOW_S for i, t in enumerate(totals) if t < 0.8 * mean]
    cams = {n: {"fps": round(sum(c["processed"]) / (len(c["processed"]) * WINDOW_S), 2),
                "min_per_2s": min(c["processed"]), "arrived_fps": round(sum(c["arrived"]) / (len(c["arrived"]) * WINDOW_S), 2)}
            for n, c in per.items()}
    # a refresh every 30 s shows as a correlation of the all-camera totals 15 windows apart
    x = [t - mean for t in totals]
    var = sum(v * v for v in x) or 1.0
    corr = {k * WINDOW_S: round(sum(a * b for a, b in zip(x, x[k:])) / var, 2) for k in range(3, min(25, len(x)))}
    return {"cameras": raw["cameras"], "windows": len(totals),
            "correlation_at_30s": corr.get(30.0), "strongest_period_s": max(corr, key=corr.get) if corr else None, "measured_s": len(totals) * WINDOW_S,
            "total_per_2s_mean": round(mean, 1), "total_per_2s_min": round(min(totals), 1),
            "stalled_windows": stalls, "dip_windows": len(dips), "dips_at_s": dips, "per_camera": cams,
            "load_before": [round(x, 2) for x in raw["load_before"]],
            "load_after": [round(x, 2) for x in raw["load_after"]], "cpus": raw["cpus"],
            "refresh_s": {k: v["refresh"] for k, v in raw.get("timings", {}).items()}}


def table(s: dict) -> str:
    rows = [f"| {n} | {c['fps']} | {c['min_per_2s']:.0f} | {c['arrived_fps']} |" for n, c in s["per_camera"].items()]
    return "\n".join([
        f"{s['cameras']} cameras, {s['measured_s']:.0f} s measured; all cameras per 2 s: mean "
        f"{s['total_per_2s_mean']}, min {s['total_per_2s_min']}; stalled camera-windows {s['stalled_windows']}, "
        f"dips below 80% of the mean {s['dip_windows']} (at {s['dips_at_s']} s); correlation 30 s apart "
        f"{s['correlation_at_30s']} (strongest at {s['strongest_period_s']} s); load average "
        f"{s['load_before']} → {s['load_after']} on {s['cpus']} CPUs; report refreshes took {s['refresh_s']} s",
        "", "| camera | processed fps | min per 2 s | arrived fps |", "|---|---|---|---|", *rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--json", type=Path, help="write the raw progress lines and the summary here")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to the run")
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose run.py runs (to compare versions)")
    p.add_argument("--summarize", type=Path, help="only summarize the raw JSON written by an earlier run")
    args = p.parse_args()
    raw = json.loads(args.summarize.read_text())["raw"] if args.summarize else \
        measure(args.cameras, args.seconds, [x for kv in args.set for x in ("--set", kv)], args.root)
    summary = summarize(raw)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "raw": raw}, separators=(",", ":")) + "\n")
    print(table(summary))


if __name__ == "__main__":
    main()
