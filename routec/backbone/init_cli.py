"""``routec init``: from a model you already have to a ``.route`` spec that routes it.

``routec init --model MODULE:CALLABLE --input CxHxW`` traces the model with torch.fx
and lists its valid cut points with the MACs before each one (torch's FLOP counter on
meta tensors). With ``--cuts a,b,c`` it prints a spec instead: one column per piece
(``c1``, ``c2``, ..., ``head``), a router and an exit after every cut, and the model's
own head as the last exit, ready for ``routec compile`` and ``routec train``.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routec.errors import RoutecError
from routec.flags import number

MODEL_NAME = "backbone"
# what a spec's STRING token accepts inside the quotes of a cut or leaf name
_CUT_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class InitError(RoutecError):
    """A ``routec init`` request that cannot be turned into a spec."""


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init", help="write a .route spec that routes a model you already have",
        description="Trace the model that MODULE:CALLABLE builds. Without --cuts, list "
                    "its valid cut points with the MACs before each; with --cuts, print a "
                    ".route spec that cuts it there, with a router and an exit after "
                    "every cut and the model's own head as the last exit.")
    p.add_argument("--model", required=True, metavar="[NAME=]MODULE:CALLABLE",
                   help="a function or class that builds the model, importable from the "
                        f"working directory; NAME is the spec's name for it (default "
                        f"{MODEL_NAME})")
    p.add_argument("--model-kwargs", metavar="JSON",
                   help="keyword arguments of the callable, as a JSON object")
    p.add_argument("--input", required=True, metavar="CxHxW",
                   help="the shape of one input example, e.g. 3x224x224")
    p.add_argument("--cuts", metavar="A,B,...",
                   help="cut points, in the order the model runs them (omit to list them)")
    p.add_argument("--classes", type=number(int, at_least=2, at_most=100_000), metavar="N",
                   help="number of classes (default: the size of the model's output)")
    p.add_argument("--name", metavar="NETWORK",
                   help="the network's name (default: routed_ and the callable's name)")
    p.add_argument("--leaf", action="append", default=[], metavar="NAME",
                   help="a submodule torch.fx cannot trace, kept whole (repeatable)")
    p.add_argument("--all", action="store_true",
                   help="list the cuts named by traced nodes too, not only by modules")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the spec here instead of printing it")
    p.set_defaults(func=run)


@dataclass
class _Model:
    name: str          # the spec's name for it
    target: str        # MODULE:CALLABLE
    kwargs: dict[str, Any]
    module: Any        # the nn.Module
    traced: Any        # its fx.GraphModule
    leaves: tuple[str, ...]


def run(args: argparse.Namespace) -> int:
    shape = parse_input(args.input)
    model = _load(args)
    if args.cuts is None:
        _list_cuts(args, model, shape)
        return 0
    text = make_spec(args, model, shape)
    if args.output:
        from routec.files import atomic_write_text

        atomic_write_text(Path(args.output), text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# --- reading the flags ---------------------------------------------------------------------

def parse_input(text: str) -> tuple[int, int, int]:
    """``CxHxW`` as three ints from 1 to 4096, as a spec's ``input =`` takes them."""
    parts = text.strip().lower().split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or any(d < 1 or d > 4096 for d in dims):
        raise InitError(f"--input {text!r}: expected channels x height x width, each from 1 "
                        "to 4096, e.g. --input 3x224x224")
    return dims  # type: ignore[return-value]


def _split_target(text: str) -> tuple[str, str]:
    from routec.backbone.registry import ModelError
    from routec.graph.registry import LAYERS
    from routec.parse.to_spec import RESERVED

    name, sep, target = text.partition("=")
    if not sep:
        return MODEL_NAME, text
    if not _IDENT.match(name) or name in RESERVED or (name in LAYERS and LAYERS[name].builtin):
        raise ModelError(f"--model {text}: {name!r} cannot name a model in a spec (a name "
                         "of letters, digits and _, not a reserved word or built-in layer)")
    return name, target


def _kwargs(text: str | None) -> dict[str, Any]:
    from routec.backbone.registry import ModelError

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelError(f"--model-kwargs: not JSON ({err.msg} at column {err.colno})") \
            from None
    if not isinstance(value, dict):
        raise ModelError("--model-kwargs: expected a JSON object of keyword arguments, got "
                         f"{type(value).__name__}")
    return value


def _load(args: argparse.Namespace) -> _Model:
    from routec.backbone.cut import CutError, trace
    from routec.backbone.registry import build_model

    name, target = _split_target(args.model)
    kwargs = _kwargs(args.model_kwargs)
    module = build_model(name, target, kwargs).eval()
    leaves = tuple(dict.fromkeys(args.leaf))
    for leaf in leaves:
        if not _CUT_NAME.match(leaf):
            raise InitError(f"--leaf {leaf!r}: not a submodule name a spec can quote")
    try:
        traced = trace(module, leaves, name=target)
    except CutError as err:
        found = re.search(r'leaves = \["([^"]+)"\]', err.hint or "")
        hint = (f"keep the untraceable submodule whole: add --leaf {found.group(1)}" if found
                else "keep the untraceable submodule whole: add --leaf NAME") \
            if "cannot be traced" in err.message else err.hint
        raise CutError(err.message, hint=hint) from None
    return _Model(name, target, kwargs, module, traced, leaves)


# --- counting --------------------------------------------------------------------------------

def piece_macs(model: _Model, cuts: list[Any], input_shape: tuple[int, ...]
               ) -> list[dict[str, Any]]:
    """Shape and MACs of the ``len(cuts) + 1`` pieces, on meta tensors (or once on the
    CPU for a model that reads a tensor's value); a model that does not run on the
    input is a one-line error."""
    from routec.backbone.cut import piece_stats, split
    from routec.backbone.supplied import _first_line

    pieces = split(model.traced, cuts)
    try:
        return piece_stats(pieces, input_shape)
    except Exception as err:  # noqa: BLE001 - the user's model on the wrong input
        raise InitError(f"{model.target} does not run on a {_fmt(input_shape)} input "
                        f"({type(err).__name__}: {_first_line(err)})",
                        hint="give the shape the model expects with --input") from None


def _fmt(shape: tuple[int, ...] | None) -> str:
    return "x".join(map(str, shape)) if shape else "?"


def _describe(shape: tuple[int, ...] | None) -> str:
    """A piece's output as routec carries it: C×H×W, T×D tokens (D×T×1), a vector."""
    if shape is None:
        return "not one tensor"
    if len(shape) == 2:
        return f"{_fmt(shape)} tokens (as {shape[1]}x{shape[0]}x1)"
    if len(shape) == 1:
        return f"vector of {shape[0]}"
    return _fmt(shape)


def _routable(shape: tuple[int, ...] | None) -> bool:
    return shape is not None and 1 <= len(shape) <= 3


# --- listing the cuts ------------------------------------------------------------------------

def _list_cuts(args: argparse.Namespace, model: _Model, input_shape: tuple[int, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    from routec.backbone.cut import cut_points

    points = cut_points(model.traced)
    stats = piece_macs(model, points, input_shape)
    total = sum(s["macs"] for s in stats)
    before, acc = [], 0
    for s in stats[:-1]:
        acc += s["macs"]
        before.append(acc)
    modules = {n for n, _ in model.module.named_modules() if n}
    named = [i for i, p in enumerate(points) if p.name in modules]
    shown = list(range(len(points))) if args.all else named
    console = Console(width=120)
    table = Table(title=f"{model.target}: cut points on a {_fmt(input_shape)} input",
                  title_justify="left")
    for col, just in [("cut", "left"), ("output", "left"), ("MACs before", "right"),
                      ("share", "right")]:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for i in shown:
        table.add_row(points[i].name, _describe(stats[i]["shape"]), f"{before[i]:,}",
                      _share(before[i], total))
    table.add_section()
    table.add_row("(output)", _describe(stats[-1]["shape"]), f"{total:,}", _share(total, total))
    console.print(table)
    others = len(points) - len(named)
    if not args.all and others:
        rest = [p.name for i, p in enumerate(points) if i not in set(named)]
        some = ", ".join(rest[:6]) + (", ..." if len(rest) > 6 else "")
        console.print(f"{others} more cut point{'s' if others != 1 else ''} named by traced "
                      f"nodes ({some}); --all lists them too", soft_wrap=True,
                      markup=False, highlight=False)
    if not points:
        console.print(f"{model.target} has no cut point: no place where one tensor alone "
                      "is alive", soft_wrap=True)
        return
    pool = _candidates(model, points, stats, before, total, named)
    chosen = _evenly(pool, before, total, 3)
    if chosen:
        example = _command(args, cuts=",".join(points[i].name for i in chosen))
        console.print(f"hint: cut where the MACs are about evenly spread, e.g.\n  {example}",
                      soft_wrap=True, markup=False, highlight=False)


def _candidates(model: _Model, points: list[Any], stats: list[dict[str, Any]],
                before: list[int], total: int, named: list[int]) -> list[int]:
    """The cuts worth suggesting: after a whole block (a module with submodules, such as
    ``layer2`` or ``blocks.3``) rather than after a single convolution or norm, and with
    a real share of the work still to come; else any module-named cut, else any."""
    modules = dict(model.module.named_modules())
    ok = [i for i in range(len(points)) if _routable(stats[i]["shape"])
          and before[i] < 0.98 * total]
    blocks = [i for i in ok
              if i in named and next(modules[points[i].name].children(), None) is not None]
    return (blocks or [i for i in ok if i in named] or ok
            or [i for i in range(len(points)) if _routable(stats[i]["shape"])])


def _share(part: int, total: int) -> str:
    return f"{100 * part / total:.1f}%" if total else "-"


def _evenly(pool: list[int], before: list[int], total: int, k: int) -> list[int]:
    """Up to ``k`` cuts of ``pool`` whose MACs-before are nearest to 1/(k+1), 2/(k+1), ..."""
    chosen: list[int] = []
    for j in range(1, k + 1):
        target = total * j / (k + 1)
        left = [i for i in pool if i not in chosen and (not chosen or i > chosen[-1])]
        if not left:
            break
        chosen.append(min(left, key=lambda i: (abs(before[i] - target), i)))
    return chosen


# --- writing the spec ------------------------------------------------------------------------

def _command(args: argparse.Namespace, *, cuts: str | None) -> str:
    """The ``routec init`` command line that makes this spec (without -o)."""
    words = ["routec", "init", "--model", args.model]
    if args.model_kwargs is not None:
        words += ["--model-kwargs", args.model_kwargs]
    words += ["--input", args.input]
    for leaf in dict.fromkeys(args.leaf):
        words += ["--leaf", leaf]
    if cuts is not None:
        words += ["--cuts", cuts]
    if args.classes is not None:
        words += ["--classes", str(args.classes)]
    if args.name is not None:
        words += ["--name", args.name]
    return shlex.join(words)


def _network_name(args: argparse.Namespace, target: str) -> str:
    from routec.parse.to_spec import RESERVED

    if args.name is not None:
        if not _IDENT.match(args.name) or args.name in RESERVED:
            raise InitError(f"--name {args.name!r}: a network name is letters, digits and _, "
                            "starting with a letter, and not a reserved word")
        return args.name
    callable_name = target.partition(":")[2].split(".")[-1]
    return "routed_" + (re.sub(r"[^A-Za-z0-9_]", "_", callable_name).strip("_") or "model")


def make_spec(args: argparse.Namespace, model: _Model, input_shape: tuple[int, ...]) -> str:
    from routec.backbone.cut import resolve_cut

    names = [c.strip() for c in args.cuts.split(",") if c.strip()]
    if not names:
        raise InitError("--cuts names no cut point", hint="omit --cuts to list the valid ones")
    for n in names:
        if not _CUT_NAME.match(n):
            raise InitError(f"--cuts: {n!r} is not a module or traced-node name")
    cuts = [resolve_cut(model.traced, n, model=model.target) for n in names]
    stats = piece_macs(model, cuts, input_shape)
    for n, s in zip(names, stats):
        if not _routable(s["shape"]):
            raise InitError(f"cannot route {model.target} after {n!r}: it gives a "
                            f"{_fmt(s['shape'])} tensor, and a piece must give C×H×W, T×D "
                            "or a vector", hint="cut before or after it")
    out = stats[-1]["shape"]
    logits = out is not None and len(out) == 1
    if out is None:
        raise InitError(f"{model.target} returns more than one tensor; routec routes a model "
                        "whose output is one tensor")
    classes = args.classes
    if logits and classes is None:
        classes = out[0]
        if not 2 <= classes <= 100_000:
            raise InitError(f"{model.target} outputs {classes} values, not logits of 2 to "
                            "100000 classes", hint="give the number of classes with --classes")
    elif logits and classes != out[0]:
        raise InitError(f"--classes {classes}, but {model.target} outputs {out[0]} logits",
                        hint=f"omit --classes, or build the model for {classes} classes "
                             "with --model-kwargs")
    elif classes is None:
        raise InitError(f"{model.target} outputs a {_fmt(out)} tensor, not logits: "
                        "say the number of classes with --classes",
                        hint="a linear exit then reads its output")
    network = _network_name(args, model.target)
    total = sum(s["macs"] for s in stats)
    return _render(args, model, network, input_shape, classes, names, stats, logits, total)


def _render(args: argparse.Namespace, model: _Model, network: str,
            input_shape: tuple[int, ...], classes: int, names: list[str],
            stats: list[dict[str, Any]], logits: bool, total: int) -> str:
    m = model.name
    file = args.output or f"{network}.route"
    supply = f"--model {shlex.quote(f'{m}={model.target}')}"
    if model.kwargs:
        supply += f" --model-kwargs {shlex.quote(f'{m}=' + json.dumps(model.kwargs))}"
    call = f"{model.target}({', '.join(f'{k}={v!r}' for k, v in model.kwargs.items())})"
    source = ("the size of its output (its logits)" if logits and args.classes is None
              else "from --classes")
    head_exit = "the model's own head" if logits else "a linear exit on the model's output"
    assumes = (f"inputs of {_fmt(input_shape)}; the model that {call} builds, traced with "
               f"torch.fx; classes = {classes}, {source}. Cut after {', '.join(names)}, each "
               "cut with a router and an exit (the defaults below, untrained); the last exit "
               f"is {head_exit}. The pieces add up to the model's {total:,} MACs.")
    lines = [f"# Made by: {_command(args, cuts=','.join(names))}"]
    lines += textwrap.wrap(assumes, 88, initial_indent="# Assumes: ",
                           subsequent_indent="#   ", break_long_words=False,
                           break_on_hyphens=False)
    lines += [
        "# The model and its weights are supplied at run time, not written here:",
        f"#   routec compile {shlex.quote(file)} {supply} --report",
        f"#   routec train {shlex.quote(file)} {supply} --weights WEIGHTS --freeze all",
        f"network {network} (input = {_fmt(input_shape)}, classes = {classes}) {{",
    ]
    leaves = ""
    if model.leaves:
        leaves = "(leaves = [" + ", ".join(f'"{x}"' for x in model.leaves) + "])"
    cols = [f"c{k + 1}" for k in range(len(names))] + ["head"]
    bounds = [None, *names, None]
    calls = []
    for k in range(len(cols)):
        args_ = [f'from = "{bounds[k]}"'] if bounds[k] else []
        args_ += [f'to = "{bounds[k + 1]}"'] if bounds[k + 1] else []
        calls.append(f"{m}({', '.join(args_)})")
    width = max(len(c) for c in cols)
    decl = [f"    column {c.ljust(width)} = {call}" for c, call in zip(cols, calls)]
    pad = max(len(d) for d in decl) + 2
    head_lines = [
        (f"    model  {m}{leaves}", "supplied at run time (--model)"),
        ("    router default = mlp(hidden = [16], pooled = 1)",
         "pooled = 1: the mean of a map or of tokens"),
        ("    exit   default = linear(pooled = 1)", "a small head after every cut"),
    ]
    if logits:
        head_lines.append(("    exit   own     = logits", "the model's own head"))
    pad = max(pad, *(len(t) + 2 for t, _ in head_lines))
    lines += [f"{t.ljust(pad)}# {c}" for t, c in head_lines]
    for d, s in zip(decl, stats):
        lines.append(f"{d.ljust(pad)}# {_describe(s['shape'])}, {s['macs']:,} MACs")
    last = "head -> exit(own)" if logits else "head -> exit"
    route = [f"    route c1 -> either {{ exit"] + [
        f"        | {c} -> either {{ exit" for c in cols[1:-1]]
    route.append(f"        | {last} " + " ".join("}" * (len(cols) - 1)))
    lines += route
    lines.append("}")
    return "\n".join(lines) + "\n"
