"""Argument types shared by every ``routec`` command: numbers a flag takes, and the
parser that reads them.

Each stage's command-line module imports these from here, below every stage, so that
no stage imports :mod:`routec.cli` (which imports every stage's commands).
"""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable


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
