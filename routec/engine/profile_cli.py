"""``routec profile``: measured seconds per example of every node, as a cost table."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from routec.backbone.flags import add_model_flags, supply_from_flags
from routec.engine import registry
from routec.errors import RoutecError
from routec.flags import number


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="measure every node's time per example: a cost table for "
                        "--cost latency",
        description="Seconds per example of every node (stem, columns, routers, exits) in "
                    "one engine at each --batch, every row of the batch sent through the node "
                    "(routing forced to one exit at a time), timed round-robin with the static "
                    "chain, medians. Printed beside MACs; -o writes the JSON cost table (with "
                    "the machine, engine, batch sizes and torch version) that `routec train "
                    "--cost latency --cost-table FILE` reads. Also checks that the times of "
                    "the static chain's nodes add up to the chain timed whole.")
    p.add_argument("target", metavar="SPEC|RUN", help="a spec (file or bundled name) or a run")
    default = registry.profile_default()
    p.add_argument("--engine", choices=registry.supporting(registry.PROFILE), default=default,
                   help=f"engine to time in (default {default}: "
                        f"{registry.get(default).summary})")
    p.add_argument("--batch", type=number(int, at_least=1), nargs="+", default=[256],
                   help="batch size(s) (default 256); training prices with the first")
    p.add_argument("--images", type=number(int, at_least=0), default=0,
                   help="images per pass (default: one batch, at least 32)")
    p.add_argument("--repeats", type=number(int, at_least=1), default=5,
                   help="passes per exit's path (default 5)")
    p.add_argument("--threads", type=number(int, at_least=0), default=0,
                   help="torch threads (default: torch's default); time with the thread "
                        "count training and deployment will use")
    p.add_argument("--device", default="cpu",
                   help="cpu (default), cuda, cuda:N or mps: where the nodes are timed")
    p.add_argument("-o", "--out", metavar="FILE", help="write the cost table (JSON) here")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    add_model_flags(p, weights=False)
    p.set_defaults(func=run_profile)


def _networks(target: str, batch: int, images: int, args: argparse.Namespace | None = None
              ) -> tuple[Any, Any, str]:
    """(routed network, its static chain, label) of a spec or a run, refused before
    it is built where it cannot run at ``batch`` with ``images`` images here."""
    from routec.api import compile_network
    from routec.engine.cli import _is_run, load_network
    from routec.graph import static_depth
    from routec.graph.memory import check_inference_fits
    from routec.parse import load_spec, parse_spec

    if _is_run(target):
        cfg, net, state = load_network(target, batch=batch, images=images,
                                       command="routec profile")
        spec = parse_spec(state["spec_text"], state["spec_label"])
        static = compile_network(spec, classes=len(state["classes"]),
                                 static=static_depth(spec)).build()
        return net, static, f"run {target}"
    if args is not None:
        supply_from_flags(args)  # a RUN names its own models
    spec = load_spec(target)
    compiled = compile_network(spec)
    check_inference_fits(compiled.graph, batch, "routec profile", images=images)
    return compiled.build(), compile_network(spec, static=static_depth(spec)
                                             ).build(), f"spec {target}"


def run_profile(args: argparse.Namespace) -> int:
    import torch

    from routec.engine.profile import format_table, profile

    from routec.train.device import resolve_device

    device = resolve_device(args.device)  # a one-line error before anything is built
    if args.threads:
        torch.set_num_threads(args.threads)
    if any(b < 1 for b in args.batch):
        raise RoutecError("--batch values must be at least 1")
    if args.out and Path(args.out).is_dir():  # said before minutes of timing, not after
        raise RoutecError(f"{args.out}: is a folder; -o names the cost table's file")
    torch.manual_seed(0)
    biggest = max(args.batch)
    routed, static, label = _networks(args.target, biggest,
                                      max(biggest, args.images or 0, 32), args)
    say = None if args.json else (lambda s: print(f"... {s}", file=sys.stderr))
    table = profile(routed, static, batches=args.batch, engine=args.engine,
                    repeats=max(1, args.repeats), images=args.images or None, label=label,
                    progress=say, device=str(device))
    if args.out:
        from routec.files import atomic_write

        text = (json.dumps(table, indent=2) + "\n").encode("utf-8")
        atomic_write(Path(args.out), lambda f: f.write(text), make_parents=True)
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print(format_table(table))
        if args.out:
            print(f"cost table written to {args.out} (train with --cost latency --cost-table "
                  f"{args.out})")
    return 0
