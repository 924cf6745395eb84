"""Ordinary mistakes and hostile inputs end in one line saying what is wrong, never a
traceback: unwritable outputs, out-of-range numbers, oversize networks and images.

Every case runs the real command line in-process (``routec.cli.main``) and checks the
exit status (2), the one error line (naming the flag or the file) and that no
traceback was printed.

The hostile inputs of a run directory and of an export have their own modules, with
the same three checks:

- tests/test_run_safety.py: a checkpoint whose pickle would run code, read by each of
  the ten commands that read checkpoints; tensors altered inside an intact zip; two
  writers on one run; SIGINT/SIGTERM; stale temporary files; ``--resume`` with fewer
  iterations or an edited spec;
- tests/test_deploy_safety.py: the torch-free runner given a cyclic, out-of-range,
  escaping, negative or damaged manifest, or images, labels and batches it cannot use.
"""
from __future__ import annotations

import builtins
import errno
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from routec.cli import main

# Eight 65,536-channel convs: a terabyte of weights, more than any machine has.
HUGE = """network huge (input = 3x32x32, classes = 10) {
    column c1 = conv(16)
    column c2 = conv(65536) -> conv(65536) -> conv(65536) -> conv(65536)
                -> conv(65536) -> conv(65536) -> conv(65536) -> conv(65536)
    route c1 -> either { exit | c2 -> exit }
}
"""

TRAIN_FAST = ["--data", "synthetic", "--iterations", "1", "--batch", "4",
              "--val-examples", "8", "--eval-every", "1", "--checkpoint-every", "1",
              "--no-progress"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    """Exit status and everything printed; argparse's own exits count as statuses."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def error_line(code: int, text: str) -> str:
    """The single error line of a refused command (status 2, no traceback)."""
    assert code == 2, text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if "error:" in line]
    assert len(errors) == 1, text
    return errors[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run (one iteration) to evaluate, export and report."""
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert main(["train", "tiny", *TRAIN_FAST, "--out", str(out)]) == 0
    return out


# ---------------------------------------------------------------- unwritable outputs

def _under(path: object, folder: Path) -> bool:
    try:
        return Path(os.fsdecode(path)).absolute().is_relative_to(folder)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _writes(mode: str) -> bool:
    return any(c in mode for c in "wax+")


@pytest.fixture
def hostile_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                   ) -> Callable[[str], Path]:
    """``hostile_folder(kind)``: a folder whose files cannot be written.

    The tests run as root, for whom chmod 0o500 changes nothing, so the file system is
    simulated at the calls every writer goes through (os.open, os.mkdir, open): for
    "read-only" creating anything in the folder fails with EROFS, as on a read-only
    mount; for "full" the opened file is /dev/full, so the kernel itself answers every
    write with ENOSPC, as on a full disk (files opened to append, such as a run's lock,
    open as they are: /dev/full cannot be locked)."""
    real_os_open, real_mkdir, real_open = os.open, os.mkdir, builtins.open
    folder = tmp_path / "out"
    folder.mkdir()

    def make(kind: str) -> Path:
        def refuse(path: object) -> None:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))  # type: ignore[arg-type]

        def os_open(path: object, flags: int, *args: object, **kw: object) -> int:
            if _under(path, folder) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                if kind == "read-only":
                    refuse(path)
                return real_os_open("/dev/full", os.O_WRONLY)
            return real_os_open(path, flags, *args, **kw)  # type: ignore[arg-type]

        def mkdir(path: object, *args: object, **kw: object) -> None:
            if kind == "read-only" and _under(path, folder):
                refuse(path)
            real_mkdir(path, *args, **kw)  # type: ignore[arg-type]

        def open_(file: object, mode: str = "r", *args: object, **kw: object) -> object:
            if _under(file, folder) and _writes(mode):
                if kind == "read-only":
                    refuse(file)
                if "a" not in mode:  # appending (a run's lock, its log) opens as it is
                    return real_open("/dev/full", mode.replace("x", "w"),
                                     *args, **kw)  # type: ignore[call-overload]
            return real_open(file, mode, *args, **kw)  # type: ignore[call-overload]

        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(io, "open", open_)
        return folder

    return make


# (command line with OUT for the output, whether the output is a folder)
WRITERS: dict[str, tuple[list[str], bool]] = {
    "compile -o": (["compile", "tiny", "-o", "OUT"], False),
    "draw -o": (["draw", "tiny", "-o", "OUT.dot"], False),
    "train --out": (["train", "tiny", *TRAIN_FAST, "--out", "OUT"], True),
    "export -o": (["export", "RUN", "-o", "OUT"], True),
    "report -o": (["report", "RUN", "-o", "OUT"], True),
    "profile -o": (["profile", "tiny", "--batch", "4", "--repeats", "1", "-o", "OUT.json"],
                   False),
    "data show --out": (["data", "show", "synthetic", "--n", "4", "--out", "OUT.png"], False),
}


def _argv(command: str, out: Path, run: Path) -> list[str]:
    args, _ = WRITERS[command]
    return [a.replace("OUT", str(out)) if "OUT" in a else str(run) if a == "RUN" else a
            for a in args]


@pytest.mark.parametrize("kind, command", [
    (kind, command) for kind in ("read-only", "full") for command in WRITERS])
def test_unwritable_output_folder(command: str, kind: str, hostile_folder: Callable[[str], Path],
                                  run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A read-only or full disk is the user's to fix: say which path, and why."""
    folder = hostile_folder(kind)
    code, text = run_cli(capsys, *_argv(command, folder / "result", run_dir))
    line = error_line(code, text)
    assert str(folder) in line
    assert ("Read-only file system" if kind == "read-only" else "No space left") in line


@pytest.mark.parametrize("command", list(WRITERS))
def test_output_name_too_long(command: str, run_dir: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """A name longer than the file system allows (255 bytes) is named, not a traceback."""
    long = "n" * 300
    code, text = run_cli(capsys, *_argv(command, tmp_path / long, run_dir))
    line = error_line(code, text)
    assert long in line and "too long" in line


@pytest.mark.parametrize("command", list(WRITERS))
def test_output_of_the_wrong_kind(command: str, run_dir: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A file where a folder is wanted, or a folder where a file is wanted."""
    _, wants_folder = WRITERS[command]
    if wants_folder:
        (tmp_path / "result").write_text("a file\n")
        out = tmp_path / "result"
    else:
        out = tmp_path / "result"  # the command adds its suffix, if any
        Path(_argv(command, out, run_dir)[-1]).mkdir()
    code, text = run_cli(capsys, *_argv(command, out, run_dir))
    line = error_line(code, text)
    assert str(out) in line


@pytest.mark.parametrize("where", ["a file", "a name too long"])
def test_unwritable_data_cache_is_skipped_with_a_note(
        where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The decoded-data cache only saves time: one that cannot be written (torch writes
    it from C++, so it is made unwritable for real here) is named in a note and the
    command goes on without it."""
    images = _image_folder(tmp_path / "images")
    cache = tmp_path / ("cache" if where == "a file" else "c" * 300)
    if where == "a file":
        cache.write_text("not a folder\n")
    code, text = run_cli(capsys, "data", "show", images, "--n", "4",
                         "--out", tmp_path / "grid.png", "--cache-dir", cache)
    assert code == 0 and "Traceback" not in text, text
    notes = [line for line in text.splitlines() if "could not write cache file" in line]
    assert len(notes) == 1 and str(cache) in notes[0]
    assert (tmp_path / "grid.png").exists()


# ---------------------------------------------------------------- numbers on the command line

def _numeric_flags() -> list[tuple[str, str, str]]:
    """(command, flag, 'float' or 'int') of every number-valued option of every command."""
    import argparse

    from routec.cli import build_parser

    found = []

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*prefix, name))
            elif action.option_strings and action.type is not None:
                kind = getattr(action.type, "__name__", "")
                if kind in ("float", "int"):
                    found.append((" ".join(prefix), action.option_strings[-1], kind))

    walk(build_parser(), ())
    return found


NUMERIC_FLAGS = _numeric_flags()


def test_every_numeric_flag_is_found() -> None:
    """The sweep below covers the flags it should (a renamed type would hide them)."""
    flags = {(c, f) for c, f, _ in NUMERIC_FLAGS}
    for expected in [("train", "--lr"), ("train", "--seed"), ("eval", "--k-cpt"),
                     ("eval", "--threshold"), ("bench", "--seconds"), ("profile", "--batch"),
                     ("draw", "--dpi"), ("compile", "--kcpt-unit"), ("data show", "--n"),
                     ("experiment", "--iterations")]:
        assert expected in flags


@pytest.mark.parametrize("command, flag, kind", NUMERIC_FLAGS,
                         ids=[f"{c} {f}" for c, f, _ in NUMERIC_FLAGS])
def test_numeric_flag_refuses_non_finite_or_oversize(
        command: str, flag: str, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """nan and inf are no setting, and no count or seed exceeds 64 bits: refused while
    parsing, before anything runs, naming the flag."""
    for value in (["nan", "inf", "-inf"] if kind == "float" else [str(2**64), str(-2**64)]):
        code, text = run_cli(capsys, *command.split(), flag, value)
        line = error_line(code, text)
        assert f"argument {flag}" in line
        assert ("finite" in line) if kind == "float" else ("64 bits" in line)


@pytest.mark.parametrize("argv, message", [
    (["eval", "RUN", "--threshold", "5"], "argument --threshold: must be at most 1"),
    (["eval", "RUN", "--threshold", "-1"], "argument --threshold: must be at least 0"),
    (["eval", "RUN", "--k-cpt", "-1e-9"], "argument --k-cpt: must be at least 0"),
    (["draw", "RUN", "--k-cpt", "-1"], "argument --k-cpt: must be at least 0"),
    (["draw", "tiny", "--dpi", "0"], "argument --dpi: must be at least 1"),
    (["bench", "tiny", "--threads", "-2"], "argument --threads: must be at least 0"),
    (["bench", "tiny", "--latency-images", "0"], "argument --latency-images: must be at least 1"),
    (["bench", "tiny", "--seconds", "-1"], "argument --seconds: must be at least 0"),
    (["profile", "tiny", "--repeats", "0"], "argument --repeats: must be at least 1"),
    (["profile", "tiny", "--threads", "-1"], "argument --threads: must be at least 0"),
    (["compile", "tiny", "--kcpt-unit", "0"], "argument --kcpt-unit: must be more than 0"),
    (["experiment", "cifar2", "--batch", "1"], "argument --batch: must be at least 2"),
    (["data", "show", "synthetic", "--out", "x.png", "--n", "100000000000"],
     "argument --n: must be at most 1024"),
    (["train", "tiny", "--seed", "-1"], "seed: Input should be greater than or equal to 0"),
    (["train", "tiny", "--device", "cpu:99"], "--device cpu:99: there is one CPU device"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_numeric_flag_out_of_range(argv: list[str], message: str, run_dir: Path,
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Values of the right type but outside what the setting means."""
    argv = [str(run_dir) if a == "RUN" else a for a in argv]
    if argv[0] == "train":
        argv += [*TRAIN_FAST, "--out", str(tmp_path / "run")]
    code, text = run_cli(capsys, *argv)
    assert message in error_line(code, text)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_config_file_lr_inf_refused_before_training(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """TOML can say inf; such an lr used to pass validation and diverge at iteration 0."""
    (tmp_path / "run.toml").write_text("lr = inf\n")
    code, text = run_cli(capsys, "train", "tiny", "--config", tmp_path / "run.toml",
                         *TRAIN_FAST, "--out", tmp_path / "run")
    assert "lr: Input should be a finite number" in error_line(code, text)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- inputs

def test_metrics_log_that_is_not_text(run_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A binary metrics.jsonl is named as no training log, not a UnicodeDecodeError."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "metrics.jsonl").write_bytes(bytes(range(128, 256)) * 4)
    code, text = run_cli(capsys, "report", run, "-o", tmp_path / "report")
    line = error_line(code, text)
    assert str(run / "metrics.jsonl") in line and "not a text file" in line


def test_ten_thousand_exits_name_the_limit(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """10,000 branches of one junction exceed the node limit, said at the junction
    (line 4, column 16), not "nested too deeply" at 1:1."""
    exits = " | ".join(["exit"] * 10_000)
    (tmp_path / "many.route").write_text(
        "network many (input = 3x8x8, classes = 2) {\n"
        "    stem to_pyramid(scales = 1)\n"
        "    column a = multiscale[4]\n"
        f"    route a -> either {{ {exits} }}\n"
        "}\n")
    code, text = run_cli(capsys, "compile", tmp_path / "many.route", "-o", tmp_path / "m.py")
    line = error_line(code, text)
    assert line.startswith(f"{tmp_path / 'many.route'}:4:16: error: this junction has "
                           "10,000 branches")
    assert "at most 5,000 nodes" in line and "nested too deeply" not in text


def _png(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height (its pixel data is a stub)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * (1 + 3 * width) * min(height, 8)))
            + chunk(b"IEND", b""))


def _image_folder(root: Path) -> Path:
    """Two classes of twenty 8×8 images each, enough for every split."""
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(20):
            (root / cls / f"{i}.png").write_bytes(_png(8, 8))
    return root


@pytest.mark.parametrize("side", [9000, 60000], ids=["over routec's limit", "over PIL's"])
def test_image_header_claiming_an_absurd_size(side: int, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A 60000×60000 header is a few hundred bytes; it is refused from the header, with
    the file named, before a pixel is decoded."""
    bomb = _image_folder(tmp_path / "images") / "a" / "bomb.png"
    bomb.write_bytes(_png(side, side))
    code, text = run_cli(capsys, "train", "tiny", *TRAIN_FAST, "--data",
                         tmp_path / "images", "--out", tmp_path / "run")
    line = error_line(code, text)
    assert str(bomb) in line and ("decompression bomb" in line)


# ---------------------------------------------------------------- memory

@pytest.mark.parametrize("command", ["bench", "profile"])
def test_oversize_spec_refused_before_allocation(command: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A terabyte network is refused from its estimate, as train refuses it."""
    (tmp_path / "huge.route").write_text(HUGE)
    code, text = run_cli(capsys, command, tmp_path / "huge.route")
    line = error_line(code, text)
    assert line.startswith(f"error: routec {command}: network 'huge' at batch 256 needs about ")
    assert "but this machine has" in line


@pytest.mark.parametrize("argv", [["bench", "tiny", "--images", "10000000000"],
                                  ["profile", "tiny", "--batch", "10000000000"]],
                         ids=lambda v: " ".join(v))
def test_oversize_batch_refused_before_allocation(argv: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Ten billion images of a tiny network are refused from the estimate too."""
    code, text = run_cli(capsys, *argv)
    assert "needs about" in error_line(code, text)


@pytest.mark.parametrize("command", ["eval", "export", "bench", "profile"])
def test_run_refused_on_a_machine_without_the_memory(
        command: str, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A run trained on a bigger machine: on one with 100 kB free (simulated, as the
    memory the system reports), the commands that run it refuse it from the estimate."""
    import routec.graph.memory as memory

    monkeypatch.setattr(memory, "available_memory",
                        lambda device="cpu": (100_000, "available memory (MemAvailable)"))
    argv = {"eval": ["eval", run_dir], "export": ["export", run_dir, "-o", tmp_path / "x"],
            "bench": ["bench", run_dir], "profile": ["profile", run_dir]}[command]
    code, text = run_cli(capsys, *argv)
    line = error_line(code, text)
    assert f"routec {command}: network 'tiny' at batch" in line
    assert "but this machine has 100.0 kB" in line
    assert not (tmp_path / "x").exists()
