"""Check a candidate generator's whole-clip `lab eval-video --groups` summary against the shipped one's, by the
shipping rule of docs/models/history.md (items 1–6; item 7, CelebA clean 16 px ≥ +1.8 dB, comes from `lab eval`).

Usage: python benchmarks/real-video-groups/rule.py REFERENCE.json CANDIDATE.json [--skin-anchor ANCHOR.json --anchor-px 32]
`--skin-anchor` also bounds each group's skin-colour difference by the anchor's plus the same tolerance, at the
sizes `--anchor-px` names (default both): read against each shipped model in turn, the tolerance alone lets
that figure creep up a little every round. A figure the reference already holds above that bound may not grow.
Prints one line per item and exits 0 when every item holds, 1 otherwise."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SIZES = ("20", "32")
FLOOR = {"20": 0.90, "32": 0.95}  # every clip's identity ratio to bicubic (the every-clip targets)
RATIO_TOL = 0.005  # mean identity ratio may fall this much below the reference's
WORST_RATIO_TOL = 0.01  # the worst clip's identity ratio, and each group's ratio
WORST_GAIN_TOL = 0.02  # dB, the worst clip's PSNR gain
SKIN_TOL = 0.05  # ΔE, each group's mean skin-colour difference


def ratio(m: dict) -> float:
    """Identity ratio to bicubic, mean over mean."""
    return m["model"]["id_cos"] / m["bicubic"]["id_cos"]


def check(ref: dict, cand: dict, anchor: dict | None = None,
          anchor_px: tuple[str, ...] = SIZES) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []
    for px in SIZES:
        r, c = ref["mean"][px], cand["mean"][px]
        out.append((c["delta_psnr"] >= r["delta_psnr"],
                    f"{px} px mean gain {r['delta_psnr']:+.3f} -> {c['delta_psnr']:+.3f} dB"))
        out.append((ratio(c) >= ratio(r) - RATIO_TOL,
                    f"{px} px identity ratio {ratio(r):.3f} -> {ratio(c):.3f} (tolerance {RATIO_TOL})"))
        out.append((c["id_ratio_min"] >= FLOOR[px] and c["id_ratio_min"] >= r["id_ratio_min"] - WORST_RATIO_TOL,
                    (f"{px} px worst clip identity ratio {r['id_ratio_min']:.3f} -> {c['id_ratio_min']:.3f} "
                    f"(floor {FLOOR[px]}, tolerance {WORST_RATIO_TOL})")))
        out.append((c["delta_psnr_min"] >= r["delta_psnr_min"] - WORST_GAIN_TOL,
                    (f"{px} px worst clip gain {r['delta_psnr_min']:+.3f} -> {c['delta_psnr_min']:+.3f} dB "
                    f"(tolerance {WORST_GAIN_TOL})")))
        for g in sorted(ref.get("groups", {})):
            rg, cg = ref["groups"][g].get(px), cand["groups"][g].get(px)
            if not rg or not cg:
                continue
            out.append((ratio(cg) >= ratio(rg) - WORST_RATIO_TOL,
                        f"{px} px {g} identity ratio {ratio(rg):.3f} -> {ratio(cg):.3f}"))
            out.append((cg["model"]["skin_dE"] <= rg["model"]["skin_dE"] + SKIN_TOL,
                        f"{px} px {g} skin dE {rg['model']['skin_dE']:.2f} -> {cg['model']['skin_dE']:.2f}"))
            ag = (anchor or {}).get("groups", {}).get(g, {}).get(px) if px in anchor_px else None
            if ag:
                out.append((cg["model"]["skin_dE"] <= max(ag["model"]["skin_dE"] + SKIN_TOL, rg["model"]["skin_dE"]),
                            (f"{px} px {g} skin dE {cg['model']['skin_dE']:.3f} within {SKIN_TOL} of the anchor's "
                             f"{ag['model']['skin_dE']:.3f}, or not above the reference's {rg['model']['skin_dE']:.3f}")))
        out.append((c["model"]["temporal"] <= c["bicubic"]["temporal"],
                    f"{px} px temporal {c['model']['temporal']:.2f} vs bicubic {c['bicubic']['temporal']:.2f}"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Check a candidate's whole-clip summary against the shipping rule.")
    ap.add_argument("reference")
    ap.add_argument("candidate")
    ap.add_argument("--skin-anchor", help="summary whose group skin-colour differences also bound the candidate's")
    ap.add_argument("--anchor-px", default=",".join(SIZES), help="sizes the anchor bounds, e.g. 32")
    a = ap.parse_args(argv)
    ref, cand = (json.loads(Path(p).read_text()) for p in (a.reference, a.candidate))
    anchor = json.loads(Path(a.skin_anchor).read_text()) if a.skin_anchor else None
    items = check(ref, cand, anchor, tuple(a.anchor_px.split(",")))
    for ok, text in items:
        print(("ok   " if ok else "FAIL ") + text)
    failed = sum(not ok for ok, _ in items)
    print(f"{len(items) - failed} of {len(items)} items hold")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
