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


def _cell(text: str, label: str, column: int) -> str:
    line = next(l for l in text.splitlines() if l.lstrip("│┃ ").startswith(label))
    return [c.strip() for c in re.split(r"[│┃]", line) if c.strip()][column]


def test_main_command_runs_the_demo_and_routing_pays(tmp_path: Path, capsys) -> None:
    """The README's main command, on the data at hand: the routed network is at least
    as accurate as its static baseline, at clearly fewer MACs."""
    steps = [shlex.split(part) for part in block_after("<!-- main-command -->").split("&&")]
    routec_steps = [s for s in steps if s[0].endswith("bin/routec")]
    assert [s[1:] for s in routec_steps] == [["demo"]]
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    static_acc, routed_acc = (float(_cell(out, "test accuracy", c)) for c in (1, 2))
    static_macs, routed_macs = (float(_cell(out, "mean MACs per image", c).split()[0])
                                for c in (1, 2))
    assert routed_acc >= static_acc - 0.01, out
    assert static_macs / routed_macs >= 1.5, out
    assert "all easy" in out and "dataflow picture" in out


def test_ci_runs_the_readme_test_command() -> None:
    command = block_after("<!-- test-command -->")
    assert command.startswith("python3 -m venv .venv") and "pytest" in command
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "<!-- test-command -->" in ci  # .ci/run extracts this very block
