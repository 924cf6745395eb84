"""The README's commands are what CI and users run: keep them working."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from routec.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def block_after(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(re.escape(marker) + r"\s*```sh\n(.*?)\n```", text, re.S)
    assert found, f"no command after {marker}"
    return found.group(1).strip()


def test_main_command_trains_and_evaluates(tmp_path: Path, capsys) -> None:
    steps = [shlex.split(part) for part in block_after("<!-- main-command -->").split("&&")]
    routec_steps = [s for s in steps if s[0].endswith("bin/routec")]
    assert [s[1] for s in routec_steps] == ["train", "eval"]
    for argv in routec_steps:
        args = [str(tmp_path / "run") if a == "runs/first" else a for a in argv[1:]]
        assert main(args) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "mean MACs" in out


def test_ci_runs_the_readme_test_command() -> None:
    command = block_after("<!-- test-command -->")
    assert command.startswith("python3 -m venv .venv") and "pytest" in command
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "<!-- test-command -->" in ci  # .ci/run extracts this very block
