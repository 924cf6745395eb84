"""The ``routec`` command line: wires the pipeline stages together.

Each sub-command lives in the stage that owns it and registers itself through an
``add_commands(subparsers)`` function; this module only parses arguments and turns
:class:`~routec.errors.RoutecError` into a one-screen message and exit status 2.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from routec.errors import RoutecError


# argparse reads "-1e-7" as an unknown option (its own pattern knows only -1 and -1.5),
# so `--k-cpt -1e-7` failed as "expected one argument" instead of reaching the check
# that says why a negative k_cpt is wrong. No routec option looks like a number.
_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """An argument parser that takes negative numbers in any notation as values."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._negative_number_matcher = _NUMBER


def build_parser() -> argparse.ArgumentParser:
    from routec.codegen import cli as codegen_cli
    from routec.data import cli as data_cli
    from routec.demo import cli as demo_cli
    from routec.engine import cli as engine_cli
    from routec.engine import profile_cli
    from routec.experiment import cli as experiment_cli
    from routec.report import cli as report_cli
    from routec.train import cli as train_cli

    parser = Parser(
        prog="routec",
        description="Compile, train and inspect dynamically-routed neural networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo_cli.add_commands(sub)
    codegen_cli.add_commands(sub)
    data_cli.add_commands(sub)
    train_cli.add_commands(sub)
    report_cli.add_commands(sub)
    experiment_cli.add_commands(sub)
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
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
