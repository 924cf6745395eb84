"""Options for the test suite."""
from __future__ import annotations


def pytest_addoption(parser) -> None:
    parser.addoption("--fuzz-examples", type=int, default=1000, metavar="N",
                     help="examples per property in tests/test_fuzz.py (default 1000; "
                          "10000 for a deep run)")
    parser.addoption("--fuzz-train-specs", type=int, default=12, metavar="N",
                     help="random specs trained, routed and exported by "
                          "tests/test_fuzz_training.py (default 12; 1000 for a deep run)")
