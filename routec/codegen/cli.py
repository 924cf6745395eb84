"""``routec compile``: check a spec, print its costs, write its generated module."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from routec.backbone.flags import add_model_flags, supply_from_flags
from routec.flags import number



def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="check a .route spec and generate its PyTorch module",
                       description="Parse and validate SPEC (a .route file or the name of a "
                                   "bundled spec), then write its generated module with -o.")
    from routec import specs

    p.add_argument("spec", help="a .route file, or a bundled spec ("
                                + ", ".join(specs.names()) + ")")
    p.add_argument("-o", "--output", help="write the generated module here ('-' for stdout)")
    p.add_argument("--report", action="store_true",
                   help="print nodes, parameters and MACs per node and per path")
    p.add_argument("--classes", type=int, help="number of classes, if the spec leaves it open")
    p.add_argument("--dynamic-kcpt", action="store_true",
                   help="give every router a k_cpt input (one network for any cost)")
    p.add_argument("--kcpt-conditioning", choices=["paper", "every-layer"], default="paper",
                   help="with --dynamic-kcpt, how routers read k_cpt: paper (default: "
                        "k_cpt × 1e7 at the first layer) or every-layer (log1p(k_cpt / "
                        "--kcpt-unit) beside every layer's input)")
    p.add_argument("--kcpt-unit", type=number(float, above=0), default=1e-9, metavar="K",
                   help="every-layer conditioning: the k_cpt that maps to log 2 (default "
                        "1e-9, the smallest positive k_cpt of the default grid)")
    p.add_argument("--static", type=int, metavar="N",
                   help="compile the static baseline: the first N columns and one exit")
    add_model_flags(p, weights=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top: every routec command builds this parser
    from routec.codegen.emit import emit_module
    from routec.graph import build_graph, static_prefix
    from routec.parse import load_spec

    supply_from_flags(args)
    spec = load_spec(args.spec)
    if args.static is not None:
        spec = static_prefix(spec, args.static)
    if args.kcpt_conditioning != "paper" and not args.dynamic_kcpt:
        from routec.errors import RunError

        raise RunError(f"--kcpt-conditioning {args.kcpt_conditioning} applies with "
                       "--dynamic-kcpt")
    unit = args.kcpt_unit if args.kcpt_conditioning != "paper" else None
    g = build_graph(spec, classes=args.classes, dynamic_kcpt=args.dynamic_kcpt,
                    kcpt_unit=unit)
    from routec.graph.memory import compile_warning

    warning = compile_warning(g)
    if warning:
        print(warning, file=sys.stderr)
    if args.report:
        from routec.codegen.tables import print_report

        print_report(g)
    source = emit_module(g)
    if args.output == "-":
        sys.stdout.write(source)
    elif args.output:
        _write_atomic(Path(args.output), source)
        print(f"wrote {args.output}: {g.name}, {len(g.nodes)} nodes, {len(g.leaves)} exits",
              file=sys.stderr)
    elif not args.report:
        macs = g.path_macs()
        print(f"ok: {g.name} ({spec.file}): {len(g.nodes)} nodes, {len(g.leaves)} exits, "
              f"{len(g.junctions)} junctions, {g.total_params:,} parameters, "
              f"MACs per path {min(macs):,}..{max(macs):,}; use -o FILE to write the module")
    return 0


def _write_atomic(path: Path, text: str) -> None:
    from routec.files import atomic_write_text

    atomic_write_text(path, text)
