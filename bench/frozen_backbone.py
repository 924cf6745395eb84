"""Training on a frozen backbone: what an iteration costs against the heads it trains.

A CIFAR ResNet-20 (examples/cifar_resnet.py), frozen whole (``--freeze all``), its
pieces' outputs cached (``FeatureCache``, as ``routec train --no-augment`` does), routed
by one of two specs:

  experiment: examples/resnet20.route, the network the results page trains (exits after
              layer1.1, layer2.0 and layer3.0: routers of 16 units and exits of 128, each
              reading a 4x4-pooled map, and the model's own head);
  minimal:    the cheapest heads there are (exits after layer1 and layer2: routers of 16
              units and linear exits, each reading a map's mean), where the loss and the
              update weigh most against them.

Timed round-robin, medians:

  step:      one actor training iteration as the trainer runs it (dense pass on the
             cached features, loss, backward, TALR, clipping, SGD);
  heads:     the routers' and exits' own forward and backward pass on the same
             features, nothing else (the floor any trainer pays);
  uncached:  the same iteration computing the frozen pieces (what caching saves).

With ``--compile`` the step is also timed as ``routec train --compile`` runs it (its
forward pass, loss and backward compiled by torch.compile, and TALR, clipping and SGD
as one compiled pass), beside the heads' own pass compiled the same way: each side in
its eager and its compiled form.

Each timed call follows an untimed call of the same kind (as a step follows a step in
training). Target: step ≤ 1.5 × heads.

Run: python bench/frozen_backbone.py [--spec experiment|minimal] [--batch 128]
     [--repeats 30] [--compile] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from cifar_resnet import resnet20  # noqa: E402

from routec.backbone.supplied import supply  # noqa: E402
from routec.codegen import build_class  # noqa: E402
from routec.graph import build_graph  # noqa: E402
from routec.parse import parse_spec  # noqa: E402
from routec.train.backbone import FeatureCache, freeze, pieces_of  # noqa: E402
from routec.train.compiled_update import CompiledUpdate  # noqa: E402
from routec.train.config import make_config  # noqa: E402
from routec.train.costs import node_params  # noqa: E402
from routec.train.machine import cpu_model  # noqa: E402
from routec.train.sgd import SGD  # noqa: E402
from routec.train.steps import compile_step, strategy_step, with_grads  # noqa: E402
from routec.train.talr import apply_talr, talr_scales  # noqa: E402

MINIMAL = '''network resnet20_routed (input = 3x32x32, classes = 10) {
    model  backbone
    router default = mlp(hidden = [16], pooled = 1)
    exit   default = linear(pooled = 1)
    exit   own     = logits
    column c1   = backbone(to = "layer1")
    column c2   = backbone(from = "layer1", to = "layer2")
    column c3   = backbone(from = "layer2", to = "layer3")
    column head = backbone(from = "layer3")
    route c1 -> either { exit | c2 -> either { exit | c3 -> head -> exit(own) } }
}'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", choices=["experiment", "minimal"], default="experiment")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true",
                    help="also time the compiled step against the compiled heads")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    supply("backbone", resnet20())
    if args.spec == "experiment":
        path = ROOT / "examples" / "resnet20.route"
        g = build_graph(parse_spec(path.read_text(), str(path)))
    else:
        g = build_graph(parse_spec(MINIMAL, "resnet20_minimal.route"))
    net = build_class(g)()
    freeze(net, "all")
    net.train()
    cfg = make_config({"spec": "resnet20_routed", "strategy": "actor", "k_cpt": 4e-9})
    images = torch.randn(args.images, 3, 32, 32)
    labels = torch.randint(0, 10, (args.images,))
    cache = FeatureCache.build(net, images, torch.device("cpu"))
    opt = SGD(net.parameters(), lr=0.01, momentum=0.9)
    params = node_params(net)
    gen = torch.Generator().manual_seed(1)
    heads = [(net.NODES[net.PARENT[i]], getattr(net, net.NODES[i]))
             for i, kind in enumerate(net.KINDS) if kind in ("junction", "exit")]

    def batch() -> torch.Tensor:
        return torch.randint(0, args.images, (args.batch,), generator=gen)

    def step(cached: bool, loss=strategy_step, update=None) -> None:
        idx = batch()
        y = labels.index_select(0, idx)
        if cached:  # the batch's input as the trainer draws it (steps.draw_batch)
            x = cache.inputs(images, idx)
            x = cache.placeholder(images, len(y), y.device) if x is None else x
            with cache.rows(idx):
                res = loss(cfg, net, net, x, y, 4e-9, 1.0, gen)
        else:
            res = loss(cfg, net, net, images.index_select(0, idx), y, 4e-9, 1.0, gen)
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        scales = talr_scales(res.reach)
        if update is not None and update(scales):  # --compile's one pass
            return
        apply_talr(params, scales)  # TALR and clipping as the eager trainer applies them
        torch.nn.utils.clip_grad_norm_(with_grads(params), 1.0)
        opt.step()

    def anchor(node: str) -> str:  # the column whose output a head reads
        while node.startswith("j_"):
            node = net.NODES[net.PARENT[net.NODES.index(node)]]
        return node

    # the pieces whose outputs the heads read, and nothing else (in the minimal spec
    # c3's output only feeds the cached head piece, so neither side gathers it)
    pieces = {anchor(parent): pieces_of(getattr(net, anchor(parent)))[-1]
              for parent, _ in heads}

    read = [(anchor(parent), head) for parent, head in heads]

    def heads_forward(feats: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for name, head in read:
            total = total + head((feats[name],)).float().mean()
        return total

    def heads_only(forward=heads_forward) -> None:
        idx = batch()
        labels.index_select(0, idx)  # a heads-only trainer needs the labels too
        with cache.rows(idx):  # gathered as the trainer gathers them (one reused buffer each)
            feats = {name: p.cached_rows() for name, p in pieces.items()}
        total = forward(feats)
        opt.zero_grad(set_to_none=True)
        total.backward()

    timers = {"step": lambda: step(True), "heads": heads_only,
              "uncached": lambda: step(False)}
    if args.compile:  # each side compiled the same way (torch.compile, inductor)
        compiled_step, compiled_heads = compile_step(), torch.compile(heads_forward)
        compiled_update = CompiledUpdate(params, opt, 1.0)
        timers["step_compiled"] = lambda: step(True, compiled_step, compiled_update)
        timers["heads_compiled"] = lambda: heads_only(compiled_heads)
    for fn in timers.values():  # warm up (a compiled pass compiles its backward at its
        for _ in range(3):       # first call)
            fn()
    seconds: dict[str, list[float]] = {k: [] for k in timers}
    for _ in range(args.repeats):
        for name, fn in timers.items():
            # a step follows a step in training: each timed call follows an untimed one
            # of its own kind, so none inherits caches the 40x heavier uncached step
            # emptied (timed right after it, the cached step ran cold)
            fn()
            t0 = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    result = {
        "machine": cpu_model(), "torch": torch.__version__,
        "spec": args.spec, "threads": args.threads, "batch": args.batch, "repeats": args.repeats,
        "ms": {k: round(v * 1e3, 3) for k, v in med.items()},
        "step_over_heads": round(med["step"] / med["heads"], 3),
        **({"compiled_step_over_compiled_heads":
            round(med["step_compiled"] / med["heads_compiled"], 3),
            "compiled_step_over_heads": round(med["step_compiled"] / med["heads"], 3)}
           if args.compile else {}),
        "uncached_over_step": round(med["uncached"] / med["step"], 2),
        "cache_mib": round(cache.nbytes / 2**20, 1),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{args.spec} heads, batch {args.batch}, {args.threads} thread(s), medians of {args.repeats} "
          "round-robin repeats")
    for k, v in result["ms"].items():
        print(f"  {k:14s} {v:9.3f} ms")
    print(f"step / heads = {result['step_over_heads']:.2f} (target <= 1.5); caching saves "
          f"{result['uncached_over_step']:.1f}x per step")
    if args.compile:
        print(f"compiled: step / heads = {result['compiled_step_over_compiled_heads']:.2f}; "
              f"compiled step / eager heads = {result['compiled_step_over_heads']:.2f}")


if __name__ == "__main__":
    main()
