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


def build_parser() -> argparse.ArgumentParser:
    from routec.codegen import cli as codegen_cli
    from routec.data import cli as data_cli
    from routec.experiment import cli as experiment_cli
    from routec.report import cli as report_cli
    from routec.train import cli as train_cli

    parser = argparse.ArgumentParser(
        prog="routec",
        description="Compile, train and inspect dynamically-routed neural networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    codegen_cli.add_commands(sub)
    data_cli.add_commands(sub)
    train_cli.add_commands(sub)
    report_cli.add_commands(sub)
    experiment_cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RoutecError as err:
        print(err.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
