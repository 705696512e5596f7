"""Throughput of a folder of recordings: the local engine vs a local Ray vs two Ray nodes on this machine.

    python -m pipeline.lab.ray_bench --clips DIR --models ../shared/models --out runs/bench_ray
    python -m pipeline.lab.ray_bench --make-clips 8 --from VIDEO --frames 80 --out runs/bench_ray …

Each engine processes the same folder with `enhance-faces process` in a fresh process, as a user would run it;
the wall time includes Python and model start-up, and for Ray its start-up, which is also given alone.
A run with `enhance.policy=all` on the local Ray gives the generator every face; then one generator actor
is fed single crops by 1, 4 and 16 callers at once, to show the batches many recordings make together.
Writes `bench.json` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

from ..distributed.local_cluster import LocalCluster
from ..run.inputs import expand

RUN_PY = Path(__file__).resolve().parents[2] / "run.py"


def cut(src: Path, dst: Path, start: int, frames: int) -> Path:
    """`frames` frames of `src` from frame `start`, re-encoded (H.264) at the source's rate."""
    import av

    with av.open(str(src)) as c, av.open(str(dst), "w", format="mp4") as o:
        s = c.streams.video[0]
        rate = Fraction(s.average_rate)
        out = o.add_stream("libx264", rate=rate)
        out.width, out.height, out.pix_fmt = s.codec_context.width, s.codec_context.height, "yuv420p"
        for i, frame in enumerate(c.decode(s)):
            if i >= start + frames:
                break
            if i >= start:
                frame.pts, frame.time_base = i - start, 1 / rate  # re-encoded as decoded: no colour round trip
                o.mux(out.encode(frame))
        o.mux(out.encode())
    return dst


def make_clips(src: Path, folder: Path, n: int, frames: int) -> Path:
    """`n` clips of `frames` frames spread over `src` (overlapping when it is short)."""
    import av

    with av.open(str(src)) as c:
        total = c.streams.video[0].frames or frames
    folder.mkdir(parents=True, exist_ok=True)
    step = max(1, (total - frames) // max(1, n - 1)) if n > 1 else 0
    for i in range(n):
        cut(src, folder / f"clip{i:02d}.mp4", min(i * step, max(0, total - frames)), frames)
    return folder


def run(name: str, clips: Path, out: Path, args: list[str], env: dict | None = None) -> dict:
    """One `enhance-faces process` of the folder; its wall time and what the manifests say."""
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(RUN_PY), "process", str(clips), "--out", str(out), "--quiet", *args],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    n = len(expand([str(clips)]))
    runs = [json.loads(m.read_text()) for m in sorted(out.glob("*/manifest.json"))]
    frames = sum(r["stats"]["frames"] for r in runs)
    row = {"engine": name, "recordings": n, "frames": frames, "wall_s": round(wall, 2),
           "recordings_per_min": round(60 * n / wall, 2), "fps": round(frames / wall, 2)}
    top = out / "manifest.json"
    if top.is_file():  # a Ray job: start-up and batches from its own manifest
        job = json.loads(top.read_text())
        row |= {"ray_startup_s": job["cluster"]["startup_s"], "processing_s": job["stats"]["wall_s"],
                "fps_processing": job["stats"]["fps"], "nodes_used": len({r["node"]["id"] for r in job["runs"]}),
                "mean_batch": (job["generator"] or {}).get("mean_batch"),
                "batches": (job["generator"] or {}).get("batches")}
    return row


def sharing(callers: list[int], calls: int = 40, entry: int = 16) -> list[dict]:
    """One generator actor, `n` recordings' worth of callers each sending `calls` single crops (as a session
    does with one face at a time): the batch sizes they make together, and faces/s."""
    import numpy as np
    import ray

    from ..core.config import load_config
    from ..distributed.cluster import connect
    from ..distributed.generator import GeneratorActor, wait

    @ray.remote(num_cpus=0)
    def caller(actor, seed: int) -> None:  # noqa: ANN001 - an actor handle
        crop = np.random.default_rng(seed).integers(0, 256, (entry, entry, 3), dtype=np.uint8)
        for _ in range(calls):
            wait(actor.enhance.remote([crop]))

    rows = []
    with connect(None, 1):
        actor = GeneratorActor.options(num_cpus=0).remote(load_config(None, []), False)
        ray.get(actor.info.remote())
        for n in callers:
            before = ray.get(actor.stats.remote())
            t = time.perf_counter()
            ray.get([caller.remote(actor, i) for i in range(n)])
            wall = time.perf_counter() - t
            after = ray.get(actor.stats.remote())
            faces, batches = after["faces"] - before["faces"], after["batches"] - before["batches"]
            rows.append({"callers": n, "faces": faces, "batches": batches, "mean_batch": round(faces / batches, 2),
                         "faces_per_s": round(faces / wall, 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.lab.ray_bench", description=__doc__.split("\n")[0])
    p.add_argument("--clips", help="folder of recordings (or use --make-clips)")
    p.add_argument("--make-clips", type=int, default=0, metavar="N", help="cut N clips from --from into OUT/clips")
    p.add_argument("--from", dest="source", help="the video to cut clips from")
    p.add_argument("--frames", type=int, default=60, help="frames per made clip")
    p.add_argument("--models", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--jobs", type=int, default=2, help="recordings at once on this machine (every engine)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args(argv)
    out = Path(a.out)
    clips = make_clips(Path(a.source), out / "clips", a.make_clips, a.frames) if a.make_clips else Path(a.clips)
    common = ["--models", a.models, *[x for o in a.overrides for x in ("--set", o)]]
    rows = [run("local engine", clips, out / "local", ["--jobs", str(a.jobs), *common]),
            run("local Ray", clips, out / "ray", ["--engine", "ray", "--jobs", str(a.jobs), *common])]
    per_node = max(1, a.jobs // 2)
    t = time.perf_counter()
    with LocalCluster([{"cpus": per_node}, {"cpus": per_node, "resources": {"second_node": 1}}]) as cluster:
        started = time.perf_counter() - t
        row = run("2 Ray nodes", clips, out / "ray2", ["--engine", "ray", "--ray-address", cluster.address, *common],
                  env=cluster.env)
    rows.append(row | {"cluster_start_s": round(started, 2)})
    rows.append(run("local Ray, policy=all", clips, out / "ray_all",
                    ["--engine", "ray", "--jobs", str(2 * a.jobs), *common, "--set", "enhance.policy=all"]))
    shared = sharing([1, 4, 16])
    doc = {"clips": str(clips), "jobs": a.jobs, "cpus": len(os.sched_getaffinity(0)), "rows": rows,
           "generator_sharing": shared, "load_average": os.getloadavg()}
    (out / "bench.json").write_text(json.dumps(doc, indent=1))
    print(table(rows))
    print("\none generator actor, single-crop calls (16 px) from N callers at once:")
    print("| callers | faces | batches | mean batch | faces/s |\n|---|---|---|---|---|")
    for r in shared:
        print(f"| {r['callers']} | {r['faces']} | {r['batches']} | {r['mean_batch']} | {r['faces_per_s']} |")
    return 0


def table(rows: list[dict]) -> str:
    cols = [("engine", "engine"), ("recordings", "recordings"), ("frames", "frames"), ("wall_s", "wall s"),
            ("recordings_per_min", "recordings/min"), ("fps", "frames/s"), ("ray_startup_s", "Ray start s"),
            ("processing_s", "processing s"), ("fps_processing", "frames/s excl. start"),
            ("nodes_used", "nodes used"), ("mean_batch", "mean batch")]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(k) is None else str(r[k]) for k, _ in cols) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
