"""``routec eval``, ``routec bench`` and ``routec export``: trained and compiled networks
run for inference in an engine."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from routec.backbone.flags import add_model_flags, supply_from_flags
from routec.engine import registry
from routec.errors import RoutecError, RunError
from routec.flags import number
from routec.train.run_dir import RunDir


def add_commands(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "bench", help="time routed against static inference, each in its fastest engine",
        description="Routed against static inference, both in every engine, timed "
                    "round-robin in one process: throughput at --batch, latency at batch 1, "
                    "MAC ratio, speed ratio, the share of the MAC saving realised, and the "
                    "time of every node. For a SPEC the routing is forced to --mix; for a RUN "
                    "the network routes its own test images, against the cheapest static run "
                    "at least as accurate.")
    b.add_argument("target", metavar="SPEC|RUN", help="a spec (file or bundled name) or a run")
    b.add_argument("--mix", help="percent of examples leaving at each exit, in exit order "
                                 "(SPEC only; default 50,10,10,10,5,5,5,5 for 8 exits, else "
                                 "equal)")
    b.add_argument("--batch", type=number(int, at_least=1), default=256,
                   help="batch for throughput (default 256)")
    on_request = [n for n in registry.names() if n not in registry.supporting(registry.BENCH)]
    b.add_argument("--engines", metavar="ENGINE[,ENGINE...]",
                   help="comma-separated engines to time, of "
                        + registry.listing(last="and")
                        + " (default: " + registry.listing(registry.supporting(registry.BENCH))
                        + " when installed"
                        + ("; " + registry.listing(on_request) + " on request" if on_request
                           else "") + ")")
    b.add_argument("--static", metavar="RUN|DIR",
                   help="RUN only: a static run or a folder of them to choose the baseline "
                        "from (default: the sibling suite named *-static)")
    b.add_argument("--images", type=number(int, at_least=0), default=2048,
                   help="images per throughput pass (default 2048, whole batches)")
    b.add_argument("--repeats", type=number(int, at_least=1), default=7,
                   help="passes per network, at least")
    b.add_argument("--seconds", type=number(float, at_least=0), default=3.0,
                   help="timing per network, at least (default 3)")
    b.add_argument("--latency-images", type=number(int, at_least=1), default=100)
    b.add_argument("--no-nodes", action="store_true", help="skip the time-per-node table")
    b.add_argument("--threads", type=number(int, at_least=0), default=0,
                   help="torch and ONNX Runtime threads (default: torch's default)")
    b.add_argument("--data-root")
    b.add_argument("--cache-dir")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    add_device_flags(b)
    add_model_flags(b, weights=False)
    b.set_defaults(func=run_bench)

    e = sub.add_parser(
        "export", help="write a deployable routed network: ONNX per node + manifest",
        description="One ONNX file per node (dynamic batch axis) and manifest.json "
                    "(topology, ways, exits, classes, input shape and preprocessing, MACs "
                    "per node, k_cpt input, sha256 per file). Run it without torch on raw "
                    "images: `python -m routec.deploy DIR --images X.npy`, or "
                    "routec.deploy.load(DIR) in Python.")
    e.add_argument("run", help="a run directory or a checkpoint file")
    e.add_argument("-o", "--out", required=True, help="output directory")
    e.add_argument("--data-root", help="where the run's dataset is (its normalisation is "
                                       "recorded in the manifest)")
    e.add_argument("--cache-dir")
    e.set_defaults(func=_export)


def add_eval_command(sub: argparse._SubParsersAction) -> None:
    """``routec eval``: a trained run evaluated with routed inference, in an engine."""
    e = sub.add_parser("eval", help="evaluate a trained run with routed inference",
                       description="Test accuracy, mean MACs per example as counted by "
                                   "routed inference, per-exit fractions and accuracies.")
    e.add_argument("run", help="a run directory or a checkpoint file")
    e.add_argument("--k-cpt", type=number(float, at_least=0), nargs="+",
                   help="k_cpt values (dynamic networks; per ms for --cost latency runs)")
    e.add_argument("--policy", choices=["argmax", "confidence"], default="argmax")
    e.add_argument("--threshold", type=number(float, at_least=0, at_most=1), default=0.9,
                   help="confidence policy: exit when the top softmax probability reaches it")
    e.add_argument("--split", choices=["test", "val"], default="test")
    e.add_argument("--data-root")
    e.add_argument("--cache-dir")
    e.add_argument("--engine", choices=registry.names(), default=registry.reference(),
                   help="inference engine (routec.optimize_for_inference); default "
                        f"{registry.reference()}")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    add_device_flags(e)
    e.set_defaults(func=run_eval)


def add_device_flags(p: argparse.ArgumentParser, precision: bool = True) -> None:
    """``--device`` (and ``--precision``): where and at what precision inference runs."""
    p.add_argument("--device", default="cpu",
                   help="cpu (default), cuda, cuda:N or mps: networks, images, decisions "
                        "and gathers all live there")
    if precision:
        p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                       help="forward pass under autocast at bf16 or fp16 (default fp32)")


def device_from_flags(args: argparse.Namespace) -> Any:
    """The torch device of ``--device``, its ``--precision`` checked there: one-line
    errors before anything is loaded."""
    from routec.train.device import resolve_device
    from routec.train.precision import check_precision

    device = resolve_device(args.device)
    check_precision(getattr(args, "precision", "fp32"), device)
    return device


def _parse_mix(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise RoutecError(f"--mix must be comma-separated numbers, got {text!r}") from None


def _is_run(target: str) -> bool:
    p = Path(target)
    return (p.is_dir() and RunDir(p).has_checkpoint) or (p.is_file() and p.suffix == ".pt")


def run_bench(args: argparse.Namespace) -> int:
    import torch

    from routec.engine import bench

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch < 1:
        raise RoutecError("--batch must be at least 1")
    engines = registry.parse_names(args.engines)
    device = device_from_flags(args)
    if _is_run(args.target):
        if args.mix:
            raise RoutecError("--mix applies to a SPEC; a RUN is timed with its own routing "
                              "on its test images")
        work, pick = run_workload(args.target, args.static, args.data_root, args.cache_dir,
                                  images=max(args.images, args.batch), batch=args.batch)
    else:
        supply_from_flags(args)  # a RUN names its own models
        work = bench.spec_workload(args.target, _parse_mix(args.mix), batch=args.batch,
                                   images=args.images)
        pick = None
    say = None if args.json else (lambda s: print(f"... {s}", file=sys.stderr))
    result = bench.compare(work, batch=args.batch, engines=engines, repeats=args.repeats,
                           min_seconds=args.seconds, latency_images=args.latency_images,
                           per_node=not args.no_nodes, progress=say, device=str(device),
                           precision=args.precision)
    if pick:
        result["baseline"] = pick
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        if pick:
            print(pick["note"])
        print(bench.format_report(result))
    return 0


def run_workload(run: str, static: str | None, data_root: str | None,
                 cache_dir: str | None, images: int, batch: int = 256
                 ) -> tuple[Any, dict[str, Any]]:
    """A trained run on its test images against the cheapest static run at least as
    accurate (test accuracy, routed evaluation cached in each run directory)."""
    from routec.api import compile_network
    from routec.engine.bench import Workload
    from routec.parse import parse_spec

    routed = RunDir.open(run, data_root=data_root, cache_dir=cache_dir)
    cfg, net, data, state = routed.load()
    check_run_fits(state, cfg, batch, "routec bench", images)  # before any timing pass
    if cfg.dynamic:
        raise RunError("routec bench times runs with a fixed k_cpt",
                       hint="bench a dynamic-k_cpt network as a SPEC with --mix")
    run_dir = routed.path
    acc = routed.evaluation("test", None)["result"]["accuracy"]
    candidates = {d: RunDir(d, data_root=data_root, cache_dir=cache_dir)
                  for d in _static_runs(run_dir, static)}
    scored = []
    for d, candidate in candidates.items():
        try:
            r = candidate.evaluation("test", None)
        except RoutecError:
            continue
        scored.append((d, r["result"]["accuracy"], r["result"]["mean_macs"]))
    good = [s for s in scored if s[1] >= acc]
    if good:
        chosen = min(good, key=lambda s: s[2])
        note = (f"static baseline: {chosen[0]} (test accuracy {chosen[1]:.4f} >= routed "
                f"{acc:.4f}; the cheapest of {len(scored)} static run(s) at least as accurate)")
    elif scored:
        chosen = max(scored, key=lambda s: (s[1], -s[2]))
        note = (f"static baseline: {chosen[0]} (test accuracy {chosen[1]:.4f}, the most "
                f"accurate of {len(scored)} static run(s); none reaches the routed {acc:.4f})")
    else:
        chosen = None
        note = ("static baseline: no static runs found (pass --static); timing the full "
                "static chain of the run's spec")
    spec = parse_spec(state["spec_text"], state["spec_label"])
    if chosen is not None:
        _, static_net, _, _ = candidates[chosen[0]].load()
    else:
        from routec.graph import static_depth

        static_net = compile_network(spec, classes=len(state["classes"]),
                                     static=static_depth(spec)).build()
    static_net.eval()
    from routec.data.splits import sample_indices

    x = data.test.images[sample_indices(len(data.test.images), images)]
    work = Workload(net, static_net, x, None, label=f"{run_dir} (routed, own decisions)",
                    static_label=str(chosen[0]) if chosen else f"{spec.name} full static chain")
    return work, {"note": note, "routed_accuracy": acc,
                  "static_run": str(chosen[0]) if chosen else None,
                  "static_accuracy": chosen[1] if chosen else None}


def _static_runs(run_dir: Path, static: str | None) -> list[Path]:
    if static:
        p = Path(static)
        if RunDir(p).has_checkpoint:
            return [p]
        if not p.is_dir():
            raise RunError(f"--static {static}: not a run or a folder of runs")
        return sorted(d for d in p.iterdir() if RunDir(d).has_checkpoint)
    suite = run_dir.resolve().parent
    parts = suite.name.split("-")
    # hybrid-actor -> hybrid-static; hybrid-actor-latency -> hybrid-actor-static, then
    # hybrid-static: the nearest sibling suite of static runs
    for n in range(len(parts) - 1, 0, -1):
        sibling = suite.parent / f"{'-'.join(parts[:n])}-static"
        if sibling.is_dir() and sibling != suite:
            return sorted(d for d in sibling.iterdir() if RunDir(d).has_checkpoint)
    return []


def _export(args: argparse.Namespace) -> int:
    """``routec export``, its output folder named when the system refuses a write (no
    space, read-only): those errors come from inside the ONNX writer without a path."""
    try:
        return run_export(args)
    except OSError as err:
        if err.filename is not None:  # a named path: routec.cli reports it as it is
            raise
        raise RoutecError(f"{args.out}: cannot write the export ({err.strerror or err})"
                          ) from None


def run_export(args: argparse.Namespace) -> int:
    from routec.engine.backends import onnx
    from routec.engine.onnx_export import export_network

    onnx.ENGINE.check()
    run = RunDir.open(args.run, data_root=args.data_root, cache_dir=args.cache_dir)
    cfg, net, state = load_network(run)
    # the dataset's pixel convention and normalisation go into the manifest, so the
    # torch-free runner turns raw images into the inputs the network was trained on
    data = run.data()
    path = export_network(net, args.out, class_names=list(state["classes"]),
                          data=cfg.data, info=data.info,
                          extra={"source": {"run": str(args.run),
                                            "iteration": state["iteration"],
                                            "data": cfg.data}})
    n = len(net.NODES)
    print(f"exported {n} nodes of '{net.NAME}' to {Path(args.out)}/ (manifest: {path.name}); "
          f"run it with `python -m routec.deploy {args.out} --images X.npy`")
    return 0


def load_network(run: str | Path | RunDir, batch: int = 1, images: int = 0,
                 command: str = "routec export") -> tuple[Any, Any, dict[str, Any]]:
    """(config, network with weights, checkpoint) of a run, without loading its data;
    refused (RunError) before the network is built where ``command`` could not run it
    at ``batch`` with ``images`` images in this machine's memory."""
    if not isinstance(run, RunDir):
        run = RunDir.open(run)
    state, cfg = run.state(), run.trained_config()
    check_run_fits(state, cfg, batch, command, images)
    return cfg, run.network(), state


def check_run_fits(state: dict[str, Any], cfg: Any, batch: int, command: str,
                   images: int = 0) -> None:
    """Estimate a checkpoint's network from its spec (no tensor allocated) and refuse
    one this machine cannot run at ``batch``; see routec.graph.memory."""
    from routec.graph import build_graph, static_prefix
    from routec.graph.memory import check_inference_fits
    from routec.parse import parse_spec

    spec = parse_spec(state["spec_text"], state["spec_label"])
    if cfg.static_columns is not None:
        spec = static_prefix(spec, cfg.static_columns)
    g = build_graph(spec, classes=len(state["classes"]), dynamic_kcpt=cfg.dynamic,
                    kcpt_unit=cfg.router_kcpt_unit)
    check_inference_fits(g, batch, command, images)


def run_eval(args: argparse.Namespace) -> int:
    from routec.train.evaluate import evaluate
    from routec.train.model import to_device

    device = device_from_flags(args)
    run = RunDir.open(args.run, data_root=args.data_root, cache_dir=args.cache_dir)
    cfg, net, data, state = run.load()
    to_device(net, device)
    split = data.test if args.split == "test" else data.val
    # evaluate() runs batches of 500: refuse before the first where they cannot fit
    check_run_fits(state, cfg, min(500, len(split.images)), "routec eval")
    if cfg.dynamic:
        ks: list[float | None] = list(args.k_cpt or cfg.k_cpt_grid)
    else:
        if args.k_cpt:
            raise RunError("this network was trained with a fixed k_cpt and does not read one",
                           hint="--k-cpt applies to runs trained with --k-cpt dynamic")
        ks = [None]
    import time

    from routec.engine import optimize_for_inference

    engine = optimize_for_inference(net, args.engine, precision=args.precision)
    path_s = _run_path_seconds(run, net)
    results = []
    for k in ks:
        t0 = time.perf_counter()
        r = evaluate(engine, split.images, split.labels,
                     k_cpt=None if k is None else cfg.router_k_cpt(k), policy=args.policy,
                     threshold=args.threshold)
        row = {"k_cpt": k, **r.as_dict(), "seconds": time.perf_counter() - t0}
        if path_s is not None and args.policy == "argmax":
            # measured time per example: each exit's path time from the run's cost table
            row["mean_measured_seconds"] = sum(f * t for f, t in zip(r.exit_fraction, path_s))
        results.append(row)
    payload = {"run": str(args.run), "iteration": state["iteration"],
               "finished": state["finished"], "data": cfg.data, "split": args.split,
               "policy": args.policy, "engine": args.engine, "device": str(device),
               "precision": args.precision,
               "threshold": args.threshold if args.policy == "confidence" else None,
               "classes": state["classes"], "results": results}
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        _print_eval(payload)
    return 0


def _run_path_seconds(run: RunDir, net: Any) -> list[float] | None:
    """Seconds per example of the path to each exit, from the run's cost_table.json."""
    from routec.train.cost_table import load_cost_table, node_seconds, path_seconds

    f = run.cost_table_file
    if not f.exists():
        return None
    table = load_cost_table(f)
    node_seconds(table, list(net.NODES), str(net.NAME), source=str(f))
    return path_seconds(table, net)


def _print_eval(p: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    import torch

    console = Console(width=120)
    console.print(f"run {p['run']} (iteration {p['iteration']}"
                  f"{'' if p['finished'] else ', unfinished'}), {p['data']} {p['split']} split, "
                  f"policy {p['policy']}"
                  + (f" (threshold {p['threshold']})" if p["threshold"] is not None else ""))
    for r in p["results"]:
        head = (f"accuracy {r['accuracy']:.4f}   mean MACs {r['mean_macs']:,.0f}   "
                + (f"mean measured time {r['mean_measured_seconds'] * 1e3:.4g} ms/example "
                   "(cost table)   " if r.get("mean_measured_seconds") is not None else "")
                + f"{r['examples'] / max(r['seconds'], 1e-9):,.0f} images/s ({p['engine']} "
                  "engine)")
        if r["k_cpt"] is not None:
            head = f"k_cpt {r['k_cpt']:g}: " + head
        console.print(head)
        t = Table("exit", "fraction", "accuracy", *[c[:8] for c in p["classes"]])
        counts = torch.tensor(r["class_exit_counts"])
        for e, name in enumerate(r["exit_names"]):
            acc = r["exit_accuracy"][e]
            t.add_row(name, f"{r['exit_fraction'][e]:.3f}", "-" if acc is None else f"{acc:.3f}",
                      *[str(int(v)) for v in counts[:, e]])
        console.print(t)
