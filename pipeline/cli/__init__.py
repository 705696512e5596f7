"""Command line: `enhance-faces COMMAND` (`run.py` and `python -m pipeline` are the same command line).

One file per command, each with `add(subparsers)`. Command groups outside the product (the model
development commands, `enhance-faces lab …`) are found through the `enhance_faces.commands` entry point,
so the product never imports them. A user's mistake (bad input, config, missing model) is one line on
stderr and a non-zero exit; only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from importlib.metadata import entry_points

from ..core.errors import EnhanceError
from ..core.logs import LEVELS
from ..core.text import clean
from ..core.version import __version__
from . import bench, build_engine, catalog, config, demo, doctor, gallery, process, search, serve

PROG = "enhance-faces"
COMMANDS = (process, demo, doctor, gallery, config, bench, build_engine, catalog, search, serve)
PLUGINS = "enhance_faces.commands"  # entry-point group: more command groups, e.g. `lab`

log = logging.getLogger(__name__)


class Version(argparse.Action):
    """`--version`: the package version and the default generator's name and sha256 (hashed only when asked)."""

    def __init__(self, option_strings: list[str], dest: str, **kw: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and the default generator, then exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from ..core.models import sha256
        from ..stages.enhance.stage import default_weights

        try:
            weights = default_weights()
            gen = f"{weights.stem} (sha256 {sha256(weights)})"
        except EnhanceError as e:
            gen = f"none ({e})"
        sys.stdout.write(f"{PROG} {__version__}\ngenerator {gen}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Enhance: find, follow and super-resolve faces in video")
    parser.add_argument("--version", action=Version)
    parser.add_argument("--log-level", choices=LEVELS, default="info", help="diagnostics shown on stderr (default info)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text for people; json: one object a line (time, level, logger, message, source)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
    for plugin in sorted(entry_points(group=PLUGINS), key=lambda e: e.name):
        plugin.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..run.stop import Interrupted, interrupt, interrupted_by

    signal.signal(signal.SIGTERM, interrupt)  # a message and 143, not a silent death, even while importing
    args = build_parser().parse_args(argv)
    from ..core.logs import setup

    setup(args.log_level, args.log_format)
    try:
        return int(args.func(args) or 0)
    except EnhanceError as e:
        print(f"error: {clean(str(e))}", file=sys.stderr)
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
