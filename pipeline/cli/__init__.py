"""Command line: `run.py COMMAND` (also `python -m pipeline` and the `enhance-faces` console script).

One file per command, each with `add(subparsers)`. A user's mistake (bad input, config, missing model)
is one line on stderr and a non-zero exit; only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ..errors import EnhanceError
from . import (bench, build_engine, demo, doctor, eval_video, evaluate, export, gallery, gpu_run, pack_video,
               prepare, prepare_video, probe_track, process, train)

COMMANDS = (process, demo, doctor, gallery, bench, build_engine, prepare, prepare_video, pack_video, train, export,
            evaluate, eval_video, probe_track, gpu_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Enhance: find, follow and super-resolve faces in video")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..stop import Interrupted, interrupt, interrupted_by

    signal.signal(signal.SIGTERM, interrupt)  # a message and 143, not a silent death, even while importing
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EnhanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except Interrupted as e:
        print(e, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        stopped = interrupted_by()  # e.g. onnxruntime turns an interrupt during its import into ImportError
        if stopped is None:
            raise
        print(stopped, file=sys.stderr)
        return stopped.exit_code
    except BrokenPipeError:
        os._exit(1)


def entry() -> None:
    """The command's process entry (run.py, `python -m pipeline`, the console script): `main`, then exit.

    Once the outcome is decided and on disk, a late Ctrl-C while Python tears down (joining threads, unloading
    libraries) must not turn a clean exit code into a kill by SIGINT; so both signals are ignored from here on.
    """
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(code)
