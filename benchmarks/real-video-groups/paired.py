"""Is a clip's identity change between two generators more than frame-to-frame noise?

Two `lab eval-video --groups` summaries of the same clips (same cut, codec and detector, so the same observations
in the same order) give per observation the model's identity cosine to the truth. Their difference, divided by
the clip's bicubic identity, is the change in the clip's identity ratio; a moving-block bootstrap over the
observations (blocks of consecutive observations, since neighbouring frames are alike) gives its 95% interval.
A rule's per-clip tolerance means little if it is far inside that interval.

Usage: python benchmarks/real-video-groups/paired.py REFERENCE.json CANDIDATE.json [--px 20] [--block 10]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def block_bootstrap(d: np.ndarray, block: int, n: int, rng: np.random.Generator) -> tuple[float, float]:
    """95% interval of the mean of `d` by a moving-block bootstrap."""
    if len(d) < 3 * block:  # too few blocks for the resampling to mean anything
        return float("nan"), float("nan")
    b = block
    starts = rng.integers(0, len(d) - b + 1, size=(n, -(-len(d) // b)))
    idx = (starts[..., None] + np.arange(b)).reshape(n, -1)[:, : len(d)]
    means = d[idx].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference")
    ap.add_argument("candidate")
    ap.add_argument("--px", default="20", help="face size (a key of the summaries' clips)")
    ap.add_argument("--block", type=int, default=10, help="observations per bootstrap block")
    ap.add_argument("--resamples", type=int, default=4000)
    args = ap.parse_args()
    ref = json.loads(Path(args.reference).read_text())["clips"]
    cand = json.loads(Path(args.candidate).read_text())["clips"]
    rng = np.random.default_rng(0)
    print("| clip | observations | identity ratio, reference → candidate | change | 95% interval | beyond noise |")
    print("|---|---|---|---|---|---|")
    for name, r in ref.items():
        a, b = r.get(args.px), cand.get(name, {}).get(args.px)
        if not a or not b or "confidence" not in a or "confidence" not in b:
            continue
        ia = np.array([o[3] for o in a["confidence"]["per_obs"]])
        ib = np.array([o[3] for o in b["confidence"]["per_obs"]])
        if len(ia) != len(ib):
            raise SystemExit(f"{name}: {len(ia)} against {len(ib)} observations; not the same cut")
        bic = a["bicubic"]["id_cos"]
        d = (ib - ia) / bic
        lo, hi = block_bootstrap(d, args.block, args.resamples, rng)
        interval = "too few observations" if np.isnan(lo) else f"{lo:+.3f} … {hi:+.3f}"
        beyond = "yes" if lo > 0 or hi < 0 else ""
        print(f"| {Path(a.get('clip', name)).stem} | {len(d)} | {a['id_ratio']:.3f} → {b['id_ratio']:.3f} | "
              f"{d.mean():+.3f} | {interval} | {beyond} |")


if __name__ == "__main__":
    main()
