"""Options for the test suite."""
from __future__ import annotations


def pytest_addoption(parser) -> None:
    parser.addoption("--fuzz-examples", type=int, default=1000, metavar="N",
                     help="examples per property in tests/test_fuzz.py (default 1000; "
                          "10000 for a deep run)")
