"""A run directory's file names are spelled in one module, routec/train/run_files.py:
every other module reads them from there, so renaming one renames it everywhere."""
from __future__ import annotations

import ast
from pathlib import Path

from routec.train import run_files

ROUTEC = Path(__file__).resolve().parents[1] / "routec"
NAMES = {run_files.CHECKPOINT, run_files.CONFIG, run_files.METRICS, run_files.SPEC,
         run_files.COST_TABLE, run_files.LOCK}


def test_run_file_names_are_spelled_in_one_module() -> None:
    found = []
    for path in sorted(ROUTEC.rglob("*.py")):
        if path == ROUTEC / "train" / "run_files.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in NAMES:
                found.append(f"{path.relative_to(ROUTEC)}:{node.lineno} {node.value!r}")
    assert not found, "run-file names spelled outside run_files.py:\n" + "\n".join(found)


def test_the_names_are_the_files_a_run_writes(tmp_path: Path) -> None:
    """Independent of the constants: a trained run's directory holds exactly these."""
    from routec.cli import main

    out = tmp_path / "run"
    assert main(["train", "tiny", "--data", "synthetic", "--iterations", "2", "--batch", "8",
                 "--val-examples", "16", "--no-progress", "--no-tensorboard",
                 "--out", str(out)]) == 0
    written = {p.name for p in out.iterdir() if p.is_file()}
    expected = {run_files.CHECKPOINT, run_files.CONFIG, run_files.METRICS, run_files.SPEC}
    assert expected <= written
    assert run_files.has_checkpoint(out) and not run_files.has_checkpoint(tmp_path)
