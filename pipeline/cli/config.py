"""`enhance-faces config`: the effective settings (defaults, then --config FILE, then --set) as YAML, or the
whole configuration reference as Markdown (`--reference`, the source of docs/configuration.md)."""

from __future__ import annotations

import argparse
import sys

from .common import add_config_options


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the effective configuration as YAML (or the reference of every key)")
    add_config_options(p)
    p.add_argument("--reference", action="store_true",
                   help="print every key with its type, default, range and meaning (Markdown)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.reference:
        from ..core.reference import markdown

        sys.stdout.write(markdown())
        return 0
    import yaml

    from ..core.config import load_config

    cfg = load_config(args.config, args.overrides)
    sys.stdout.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True))
    return 0
