"""The ``routec`` command line: wires the pipeline stages together.

Each sub-command lives in the stage that owns it and registers itself through an
``add_commands(subparsers)`` function; this module only parses arguments and turns
:class:`~routec.errors.RoutecError` into a one-screen message and exit status 2.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence

from routec.errors import RoutecError


# argparse reads "-1e-7" as an unknown option (its own pattern knows only -1 and -1.5),
# so `--k-cpt -1e-7` failed as "expected one argument" instead of reaching the check
# that says why a negative k_cpt is wrong. No routec option looks like a number.
_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.IGNORECASE)


# Every number a flag takes is an int or a float that torch, numpy and the file
# formats can hold: a finite float, an int that fits in 64 bits (a --seed beyond
# that overflowed inside torch). `number` adds a flag's own range.
INT_LIMIT = 2**63 - 1


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _int64(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not -INT_LIMIT - 1 <= value <= INT_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} does not fit in 64 bits")
    return value


def number(kind: type[int] | type[float], *, at_least: float | None = None,
           above: float | None = None, at_most: float | None = None
           ) -> Callable[[str], float]:
    """An argparse ``type=`` for a finite int or float within the given bounds."""
    parse = _int64 if kind is int else _finite_float

    def check(text: str) -> float:
        value = parse(text)
        if at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"must be at least {at_least:g}, got {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}, got {text}")
        if at_most is not None and value > at_most:
            raise argparse.ArgumentTypeError(f"must be at most {at_most:g}, got {text}")
        return value

    check.__name__ = kind.__name__
    return check


class Parser(argparse.ArgumentParser):
    """An argument parser that takes negative numbers in any notation as values, and
    only finite floats and 64-bit ints for ``type=float`` and ``type=int``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._negative_number_matcher = _NUMBER
        self.register("type", float, _finite_float)
        self.register("type", int, _int64)


def build_parser() -> argparse.ArgumentParser:
    from routec.backbone import init_cli
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
    init_cli.add_commands(sub)
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
