"""`enhance-faces lab …`: the generator's development commands (data, training, export, evaluation, probes,
the one prepared job for a lent GPU).

The product's command line never imports this package: it finds the `lab` group through the
`enhance_faces.commands` entry point that `pyproject.toml` declares.
"""

from __future__ import annotations

import argparse

from . import average, eval_video, evaluate, export, gpu_run, pack_video, prepare, prepare_video, probe_track, train

COMMANDS = (prepare, prepare_video, pack_video, train, export, average, evaluate, eval_video, probe_track, gpu_run)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="model development: prepare data, train, export, evaluate (enhance-faces lab --help)",
                       description="Model development commands: training data, training, export, evaluation.")
    lab = p.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add(lab)
