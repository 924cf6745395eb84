"""Every ``--help`` that lists choices lists what the registries hold, not a copy."""
from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from routec.cli import main

SPECS = Path(__file__).resolve().parents[1] / "routec" / "specs"


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    # argparse wraps lines, breaking names at hyphens: join them again
    return re.sub(r"-\s+", "-", " ".join(capsys.readouterr().out.split()))


def test_compile_help_names_every_bundled_spec(capsys: pytest.CaptureFixture[str]) -> None:
    names = sorted(p.stem for p in SPECS.glob("*.route"))  # the folder itself, read here
    assert len(names) >= 7
    text = _help(capsys, "compile")
    listed = re.search(r"a bundled spec \(([^)]*)\)", text)
    assert listed is not None
    assert [n.strip() for n in listed.group(1).split(",")] == names


def test_train_help_offers_every_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    from routec.train.config import RunConfig

    strategies = get_args(RunConfig.model_fields["strategy"].annotation)
    assert f"--strategy {{{','.join(strategies)}}}" in _help(capsys, "train")


def test_experiment_help_names_every_suite(capsys: pytest.CaptureFixture[str]) -> None:
    from routec.experiment.suites import SUITES

    text = _help(capsys, "experiment")
    assert all(re.search(rf"[ :,]{re.escape(s)}(,|\s)", text) for s in SUITES)


@pytest.mark.parametrize("verb", ["throughput", "clock"])
def test_report_timing_verbs_offer_every_engine(verb: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from routec.engine import registry

    text = _help(capsys, "report", verb)
    for name in registry.names():
        assert name in text
    from routec.cli import build_parser

    parser = build_parser()
    report = next(a for a in parser._actions if a.dest == "command").choices["report"]
    verbs = next(a for a in report._actions if a.dest == "verb")
    option = next(a for a in verbs.choices[verb]._actions if "--engine" in a.option_strings)
    assert list(option.choices) == list(registry.names())
