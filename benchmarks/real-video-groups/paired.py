"""Is a clip's identity change between two generators more than frame-to-frame noise?

Two `lab eval-video --groups` summaries of the same clips (same cut, codec and detector, so the same observations
in the same order) give per observation the model's identity cosine to the truth. Their difference, divided by
the clip's bicubic identity, is the change in the clip's identity ratio; a moving-block bootstrap over the
observations (blocks of consecutive observations, since neighbouring frames are alike) gives its 95% interval.
A rule's per-clip tolerance means little if it is far inside that interval.

Summaries whose observations also carry bicubic's identity cosine (eval-video writes it) add the candidate's own
ratio to bicubic with its interval.

Usage: python benchmarks/real-video-groups/paired.py REFERENCE.json CANDIDATE.json [--px 20] [--block 10]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def block_resamples(n_obs: int, block: int, n: int, rng: np.random.Generator) -> np.ndarray | None:
    """(n, n_obs) observation indices of a moving-block bootstrap; None when there are too few blocks."""
    if n_obs < 3 * block:  # too few blocks for the resampling to mean anything
        return None
    starts = rng.integers(0, n_obs - block + 1, size=(n, -(-n_obs // block)))
    return (starts[..., None] + np.arange(block)).reshape(n, -1)[:, :n_obs]


def interval(values: np.ndarray) -> tuple[float, float]:
    """The 95% interval of bootstrap values."""
    lo, hi = np.percentile(values, [2.5, 97.5])
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
    both = all(len(c[args.px]["confidence"]["per_obs"][0]) > 4 for c in cand.values()
               if args.px in c and c[args.px].get("confidence", {}).get("per_obs"))
    head = "| clip | observations | identity ratio, reference → candidate | change | 95% interval | beyond noise |"
    print(head + (" candidate's ratio to bicubic, 95% interval |" if both else ""))
    print("|---" * (head.count("|") - 1 + both) + "|")
    for name, r in ref.items():
        a, b = r.get(args.px), cand.get(name, {}).get(args.px)
        if not a or not b or "confidence" not in a or "confidence" not in b:
            continue
        pa, pb = np.array(a["confidence"]["per_obs"], object), np.array(b["confidence"]["per_obs"], object)
        if len(pa) != len(pb):
            raise SystemExit(f"{name}: {len(pa)} against {len(pb)} observations; not the same cut")
        ia, ib = pa[:, 3].astype(float), pb[:, 3].astype(float)
        d = (ib - ia) / a["bicubic"]["id_cos"]
        idx = block_resamples(len(d), args.block, args.resamples, rng)
        row = (f"| {Path(a.get('clip', name)).stem} | {len(d)} | {a['id_ratio']:.3f} → {b['id_ratio']:.3f} | "
               f"{d.mean():+.3f} | ")
        if idx is None:
            row += "too few observations |  |" + (" |" if both else "")
        else:
            lo, hi = interval(d[idx].mean(1))
            row += f"{lo:+.3f} … {hi:+.3f} | {'yes' if lo > 0 or hi < 0 else ''} |"
            if both:
                bic = pb[:, 4].astype(float)
                rlo, rhi = interval(ib[idx].mean(1) / bic[idx].mean(1))
                row += f" {ib.mean() / bic.mean():.3f} ({rlo:.3f} … {rhi:.3f}) |"
        print(row)


if __name__ == "__main__":
    main()
