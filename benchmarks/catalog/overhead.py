"""The pipeline's speed with the catalogue on and off: alternating paired runs of the office clip.

    python benchmarks/catalog/overhead.py --out /tmp/overhead [--pairs 3] [--frames 300]

Each pair runs `process` once without and once with `--catalog OUT/catalog.sqlite` (which goes first
alternates, so a machine growing busier or idler does not favour one side), in fresh output folders, and
reads the frames per second each run's manifest reports. Writes OUT/overhead.json (every run) and prints
the median fps of each side and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OFFICE = ROOT.parent / "shared" / "data" / "video" / "office_fisheye_cctv.mp4"
MODELS = ROOT.parent / "shared" / "models"


def one(out: Path, frames: int, catalog: Path | None) -> float:
    cmd = [sys.executable, str(ROOT / "run.py"), "process", str(OFFICE), "--out", str(out), "--quiet", "--overwrite",
           "--models", str(MODELS), "--set", f"source.max_frames={frames}"]
    if catalog is not None:
        cmd += ["--catalog", str(catalog)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ), capture_output=True)
    return float(json.loads((out / "manifest.json").read_text())["stats"]["fps"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--frames", type=int, default=300)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for i in range(args.pairs):
        order = [None, out / "catalog.sqlite"] if i % 2 == 0 else [out / "catalog.sqlite", None]
        for cat in order:
            fps = one(out / f"run_{i}_{'on' if cat else 'off'}", args.frames, cat)
            runs.append({"pair": i, "catalog": cat is not None, "fps": fps})
    off = statistics.median(r["fps"] for r in runs if not r["catalog"])
    on = statistics.median(r["fps"] for r in runs if r["catalog"])
    doc = {"command": " ".join(["python", "benchmarks/catalog/overhead.py", *(argv or sys.argv[1:])]),
           "runs": runs, "median_fps_off": off, "median_fps_on": on, "on_over_off": round(on / off, 4)}
    (out / "overhead.json").write_text(json.dumps(doc, indent=1))
    print(f"catalogue off {off:.2f} fps, on {on:.2f} fps: on/off {on / off:.3f} ({args.pairs} pairs, "
          f"{args.frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
