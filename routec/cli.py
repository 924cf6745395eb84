"""The ``routec`` command line: wires the pipeline stages together.

Each sub-command lives in the stage that owns it and registers itself through an
``add_commands(subparsers)`` function; this module only parses arguments and turns
:class:`~routec.errors.RoutecError` into a one-screen message and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from routec.errors import RoutecError
from routec.flags import Parser


def build_parser() -> argparse.ArgumentParser:
    from routec.backbone import init_cli
    from routec.codegen import cli as codegen_cli
    from routec.data import cli as data_cli
    from routec.demo import cli as demo_cli
    from routec.engine import cli as engine_cli
    from routec.engine import profile_cli
    from routec.experiment import cli as experiment_cli
    from routec.experiment import sweep_cli
    from routec.report import cli as report_cli
    from routec.train import cli as train_cli

    parser = Parser(
        prog="routec",
        description="Compile, train and inspect dynamically-routed neural networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo_cli.add_commands(sub)
    codegen_cli.add_commands(sub)
    init_cli.add_commands(sub)
    data_cli.add_commands(sub)
    train_cli.add_commands(sub)
    engine_cli.add_eval_command(sub)
    report_cli.add_commands(sub)
    experiment_cli.add_commands(sub)
    sweep_cli.add_commands(sub)
    engine_cli.add_commands(sub)
    profile_cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RoutecError as err:
        print(err.render(), file=sys.stderr)
        return int(getattr(err, "exit_code", 2))  # e.g. 130 after Ctrl-C, checkpoint saved
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        # A file or folder the user named that the system refused (read-only, no
        # space, name too long, a file where a folder is wanted): the path and the
        # reason are the whole story. An OSError naming no path is left to show its
        # traceback, since routec cannot say which of the user's files it concerns.
        if err.filename is None:
            raise
        print(f"error: {err.filename}: {err.strerror or err}", file=sys.stderr)
        return 2
