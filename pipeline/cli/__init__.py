"""Command line: `run.py COMMAND` (also `python -m pipeline` and the `enhance-faces` console script).

One file per command, each with `add(subparsers)`. A user's mistake (bad input, config, missing model)
is one line on stderr and a non-zero exit; only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import EnhanceError
from . import (bench, build_engine, demo, doctor, eval_video, evaluate, export, gallery, prepare, prepare_video,
               process, train)

COMMANDS = (process, demo, doctor, gallery, bench, build_engine, prepare, prepare_video, train, export, evaluate,
            eval_video)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Enhance: find, follow and super-resolve faces in video")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EnhanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os._exit(1)
