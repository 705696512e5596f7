"""Command line: `enhance-faces COMMAND` (`run.py` and `python -m pipeline` are the same command line).

One file per command, each with `add(subparsers)`. Command groups outside the product (the model
development commands, `enhance-faces lab …`) are found through the `enhance_faces.commands` entry point,
so the product never imports them. A user's mistake (bad input, config, missing model) is one line on
stderr and a non-zero exit; only a bug shows a traceback.
"""

from __future__ import annotations

# Only the standard library and `run.stop` (itself standard library only) load before the signal handlers
# are in place (`entry`); everything else is imported after them.
import argparse
import os
import signal
import sys

from ..run import stop

PROG = "enhance-faces"
COMMANDS = ("process", "demo", "doctor", "gallery", "config", "bench", "build_engine", "catalog", "search",
            "serve")  # modules of this package
PLUGINS = "enhance_faces.commands"  # entry-point group: more command groups, e.g. `lab`


class Version(argparse.Action):
    """`--version`: the package version and the default generator's name and sha256 (hashed only when asked)."""

    def __init__(self, option_strings: list[str], dest: str, **kw: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and the default generator, then exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from ..core.errors import EnhanceError
        from ..core.models import sha256
        from ..core.version import __version__
        from ..stages.enhance.stage import default_weights

        try:
            weights = default_weights()
            gen = f"{weights.stem} (sha256 {sha256(weights)})"
        except EnhanceError as e:
            gen = f"none ({e})"
        sys.stdout.write(f"{PROG} {__version__}\ngenerator {gen}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from importlib import import_module
    from importlib.metadata import entry_points

    from ..core.logs import LEVELS

    parser = argparse.ArgumentParser(prog=PROG, description="Enhance: find, follow and super-resolve faces in video")
    parser.add_argument("--version", action=Version)
    parser.add_argument("--log-level", choices=LEVELS, default="info", help="diagnostics shown on stderr (default info)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text for people; json: one object a line (time, level, logger, message, source)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        import_module(f"{__name__}.{command}").add(sub)
    for plugin in sorted(entry_points(group=PLUGINS), key=lambda e: e.name):
        plugin.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line's outcome as an exit code; a user's mistake or a signal is one line on stderr."""
    stop.install()  # a message and 128 + N, not a silent death, whenever a signal comes (`entry` did it first)
    try:
        return _main(argv)
    except stop.Interrupted as e:
        stop.say(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        stop.say("interrupted")
        return 130


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from ..core.errors import EnhanceError
    from ..core.logs import setup
    from ..core.text import clean

    setup(args.log_level, args.log_format)
    try:
        return int(args.func(args) or 0)
    except EnhanceError as e:
        stop.say(f"error: {clean(str(e))}")
        return e.exit_code
    except (stop.Interrupted, KeyboardInterrupt):
        raise
    except BrokenPipeError:
        os._exit(1)
    except Exception:
        stopped = stop.interrupted_by()  # e.g. onnxruntime turns an interrupt during its import into ImportError
        if stopped is None:
            raise
        stop.say(str(stopped))
        return stopped.exit_code


def entry() -> None:
    """The command's process entry (run.py, `python -m pipeline`, the console script): `main`, then exit.

    The signal handlers go in before anything else loads, so a signal at any moment is a message and
    128 + its number. Once the outcome is decided and on disk, a late signal while Python tears down
    (joining threads, unloading libraries) must not turn a clean exit code into a kill; so every handled
    signal is ignored from here on.
    """
    stop.install()
    code = main()
    stop.install(signal.SIG_IGN)
    sys.exit(code)
