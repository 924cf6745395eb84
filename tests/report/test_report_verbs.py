"""``routec report``'s verbs, and the old spellings that still work with a one-line note."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from routec.cli import main

TRAIN_FAST = ["--data", "synthetic", "--iterations", "1", "--batch", "4",
              "--val-examples", "8", "--eval-every", "1", "--checkpoint-every", "1",
              "--no-progress"]
# each flag of the old spelling, and the verb that replaced it
OLD_FLAGS = {"--experiments": "results", "--harvest": "harvest",
             "--throughput": "throughput", "--clock": "clock"}


def _notes(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("note:")]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verbs") / "run"
    assert main(["train", "tiny", *TRAIN_FAST, "--out", str(out)]) == 0
    return out


def test_runs_verb_writes_what_the_old_spelling_writes(run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert main(["report", "runs", str(run), "-o", str(tmp_path / "new")]) == 0
    assert _notes(capsys.readouterr().err) == []
    assert main(["report", str(run), "-o", str(tmp_path / "old")]) == 0
    (note,) = _notes(capsys.readouterr().err)
    assert "routec report runs RUN_DIR" in note
    new = json.loads((tmp_path / "new" / "summary.json").read_text())
    old = json.loads((tmp_path / "old" / "summary.json").read_text())
    assert new["rows"] and new == old


@pytest.mark.parametrize("flag", list(OLD_FLAGS))
def test_an_old_flag_runs_its_verb_and_names_it(flag: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Both spellings reach the same code (the same one-line error on a missing folder);
    only the old one prints a note, which names the new spelling."""
    missing = str(tmp_path / "missing")
    verb = OLD_FLAGS[flag]
    assert main(["report", verb, missing]) == 2
    new = capsys.readouterr().err
    assert main(["report", flag, missing]) == 2
    old = capsys.readouterr().err
    assert _notes(new) == []
    (note,) = _notes(old)
    assert f"'routec report {flag} " in note and f"'routec report {verb} " in note
    assert old.replace(note + "\n", "") == new
    assert missing in new


def test_report_help_lists_every_verb_and_hides_the_old_flags(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    for verb in OLD_FLAGS.values():
        assert f"\n    {verb}" in text
    assert "\n    runs" in text
    assert not any(flag in text for flag in OLD_FLAGS)


def test_a_verb_refuses_the_options_of_another(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:  # argparse's usage error
        main(["report", "throughput", str(tmp_path), "-o", str(tmp_path / "x")])
    assert exc.value.code == 2
