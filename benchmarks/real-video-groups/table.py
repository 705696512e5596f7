"""Markdown tables from `enhance-faces lab eval-video … --groups` summaries: per group and face size, and per
codec. Usage: python benchmarks/real-video-groups/table.py results/*.json"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(name: str, px: str, m: dict) -> str:
    model, bic = m["model"], m["bicubic"]
    return (f"| {name} | {px} | {m['clips']} | {m['delta_psnr']:+.2f} ({m['delta_psnr_min']:+.2f}) | "
            f"{model['id_cos']:.3f} / {bic['id_cos']:.3f} | {m['id_ratio_min']:.2f} | "
            f"{m['id_at_least_bicubic']} of {m['clips']} | {model['skin_dE']:.2f} / {bic['skin_dE']:.2f} | "
            f"{model['temporal']:.2f} / {bic['temporal']:.2f} |")


def main(paths: list[str]) -> None:
    head = ("| group | face px | clips | ΔPSNR vs bicubic, mean (worst) | identity, model / bicubic | worst identity "
            "ratio | clips with identity ≥ bicubic | skin ΔE, model / bicubic | temporal, model / bicubic |\n"
            "|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        s = json.loads(Path(path).read_text())
        print(f"\n**{Path(path).stem}**: {s.get('codec', 'libx264')} CRF {s['crf']}\n\n{head}")
        for px in map(str, s["sizes"]):
            if s["mean"].get(px):
                print(row("all", px, s["mean"][px]))
            for g, per in s.get("groups", {}).items():
                if per.get(px):
                    print(row(g, px, per[px]))


if __name__ == "__main__":
    main(sys.argv[1:])
