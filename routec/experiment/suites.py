"""Named suites: each a list of runs (run name → settings), as in the paper's Figs. 5, 9.

A suite is data, not code: it says which spec, strategy, dataset and k_cpt each
run uses. The budget (iterations) and the data root come from the command line,
so the same suite runs at a CPU budget here and at the full 80,000 iterations
elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routec.train.config import K_CPT_GRID, LATENCY_K_CPT_GRID

FULL_ITERATIONS = 80_000
CPU_ITERATIONS = 3_000


def _k_name(k: float) -> str:
    return f"k{k * 1e9:g}e-9"


def _grid(prefix: dict[str, Any], divide: int = 1) -> dict[str, dict[str, Any]]:
    """One run per k_cpt of the grid, each divided by ``divide`` (runs keep the grid's
    names, so ``k4e-9`` of a ×2-wide suite is the run at 4e-9 / 4)."""
    return {_k_name(k): {**prefix, "k_cpt": k / divide} for k in K_CPT_GRID}


def _static(data: str, spec: str = "paper_chain") -> dict[str, dict[str, Any]]:
    return {f"n{n}": {"spec": spec, "strategy": "static", "static_columns": n,
                      "data": data} for n in range(1, 9)}


def _actor(data: str, spec: str = "paper_chain", divide: int = 1,
           **extra: Any) -> dict[str, dict[str, Any]]:
    return _grid({"spec": spec, "strategy": "actor", "data": data, **extra}, divide)


# Fig. 10 (§5.7): the chain with every convolution's output channels multiplied by w,
# and k_cpt divided by w² (a w-wide convolution costs about w² times the MACs)
WIDTHS = {2: "paper_chain_x2", 3: "paper_chain_x3"}


def split_budget(run: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A suite run's settings without its ``budget`` (a multiple of the iterations the
    suite is run with, for a longer-trained twin of another suite), and that multiple."""
    settings = dict(run)
    return settings, int(settings.pop("budget", 1))


SUITES: dict[str, dict[str, dict[str, Any]]] = {
    "hybrid-static": _static("hybrid"),
    "hybrid-actor": _actor("hybrid"),
    "hybrid-critic": _grid({"spec": "paper_chain", "strategy": "critic",
                            "utility": "pragmatic", "data": "hybrid"}),
    "hybrid-critic-optimistic": _grid({"spec": "paper_chain", "strategy": "critic",
                                       "utility": "optimistic", "data": "hybrid"}),
    "hybrid-critic-clserr": _grid({"spec": "paper_chain", "strategy": "critic",
                                   "critic_error": "classification", "data": "hybrid"}),
    "hybrid-actor-dynamic": {"dynamic": {"spec": "paper_chain", "strategy": "actor",
                                         "k_cpt": "dynamic", "data": "hybrid"}},
    # Beyond the paper: the same network with routers that read k_cpt at every layer,
    # log-scaled (RunConfig.k_cpt_conditioning), since the paper's single first-layer
    # input barely moves the routing
    "hybrid-actor-dynamic-listen": {"dynamic": {"spec": "paper_chain", "strategy": "actor",
                                                "k_cpt": "dynamic", "data": "hybrid",
                                                "k_cpt_conditioning": "every-layer"}},
    # §5.5 at twice the budget, both forms: does the paper's router learn to listen
    # given longer? ("budget": a multiple of the suite's --iterations)
    "hybrid-actor-dynamic-x2": {"dynamic": {"spec": "paper_chain", "strategy": "actor",
                                            "k_cpt": "dynamic", "data": "hybrid",
                                            "budget": 2}},
    "hybrid-actor-dynamic-listen-x2": {"dynamic": {"spec": "paper_chain", "strategy": "actor",
                                                   "k_cpt": "dynamic", "data": "hybrid",
                                                   "k_cpt_conditioning": "every-layer",
                                                   "budget": 2}},
    "hybrid-actor-nokdec": _actor("hybrid", k_dec=0.0),
    "hybrid-actor-notalr": _actor("hybrid", talr=False),
    "hybrid-critic-notalr": _grid({"spec": "paper_chain", "strategy": "critic",
                                   "utility": "pragmatic", "data": "hybrid", "talr": False}),
    # §5.2: c_mod's weighting by the routing decisions d̂ differentiated, not held constant
    "hybrid-actor-regdhat": _actor("hybrid", regularise_dhat=True),
    "hybrid-actor-tree": _grid({"spec": "paper_tree", "strategy": "actor", "data": "hybrid"}),
    **{f"{d}-static": _static(d) for d in ("cifar2", "cifar5", "cifar10")},
    **{f"{d}-actor": _actor(d) for d in ("cifar2", "cifar5", "cifar10")},
    **{f"cifar10-static-x{w}": _static("cifar10", spec) for w, spec in WIDTHS.items()},
    **{f"cifar10-actor-x{w}": _actor("cifar10", spec, divide=w * w)
       for w, spec in WIDTHS.items()},
}
# Beyond the paper: a CIFAR ResNet-20 routed after each stage (specs/resnet_chain.route),
# against its static prefixes and against the same network trained with every exit
# (multi-exit) and routed by a confidence threshold at evaluation.
RESNET_K_CPT = (2e-9, 8e-9, 32e-9)
SUITES.update({
    "cifar10-resnet-static": {
        f"n{n}": {"spec": "resnet_chain", "strategy": "static", "static_columns": n,
                  "data": "cifar10"} for n in (1, 2, 3)},
    "cifar10-resnet-actor": {
        _k_name(k): {"spec": "resnet_chain", "strategy": "actor", "k_cpt": k,
                     "data": "cifar10"} for k in RESNET_K_CPT},
    "cifar10-resnet-multiexit": {
        "multi-exit": {"spec": "resnet_chain", "strategy": "multi-exit", "data": "cifar10"}},
})
# Beyond the paper: a model routec did not build. A CIFAR ResNet-20 trained in plain
# PyTorch (examples/train_cifar_resnet.py writes runs/backbone/resnet20_cifar10.pt) is cut
# after layer1.1, layer2.0 and layer3.0 (examples/resnet20.route, made by `routec init`),
# its weights frozen; only the exits and routers train, on features computed once. The
# actor over the k_cpt grid against the same exits trained alone (multi-exit) and routed
# by confidence thresholds, as SDN and MSDNet deploy them. Run from the repository root
# (the model is examples.cifar_resnet:resnet20); the routec's own default recipe
# (standardised inputs, v/255 pixels as the backbone was trained on), no augmentation
# (it would change the frozen backbone's input and defeat the feature cache).
TRAINED_RESNET20 = {
    "spec": "examples/resnet20.route", "data": "cifar10", "preset": "default",
    "pixels": "unit", "augment": False, "freeze": "all",
    "models": {"backbone": {"target": "examples.cifar_resnet:resnet20",
                            "weights": "runs/backbone/resnet20_cifar10.pt"}}}
SUITES.update({
    # the backbone's prefixes with their exit; n4 is the model alone (nothing trains)
    "cifar10-r20-static": {
        f"n{n}": {**TRAINED_RESNET20, "strategy": "static", "static_columns": n}
        for n in (1, 2, 3, 4)},
    "cifar10-r20-actor": _grid({**TRAINED_RESNET20, "strategy": "actor"}),
    "cifar10-r20-multiexit": {"multi-exit": {**TRAINED_RESNET20, "strategy": "multi-exit"}},
    # the actor with the backbone fine-tuned too: every piece trains (augmented, so
    # nothing is cached), at a tenth of the default learning rate to keep its weights
    "cifar10-r20-finetune": {
        _k_name(k): {**TRAINED_RESNET20, "strategy": "actor", "k_cpt": k, "freeze": "none",
                     "augment": True, "lr": 0.01} for k in (8e-9,)},
})
# Beyond the paper: routing priced in measured time (--cost latency) beside the MAC-priced
# hybrid-actor grid, k_cpt per millisecond of the cost table. Write the table first, on
# the machine the networks will be timed on: `routec profile paper_chain --batch 256
# -o results/cost_tables/paper_chain.json` (docs/benchmarks.md, "Measured node costs").
PAPER_CHAIN_COST_TABLE = "results/cost_tables/paper_chain.json"
SUITES["hybrid-actor-latency"] = {
    f"k{k:g}ms": {"spec": "paper_chain", "strategy": "actor", "data": "hybrid",
                  "cost": "latency", "cost_table": PAPER_CHAIN_COST_TABLE, "k_cpt": k}
    for k in LATENCY_K_CPT_GRID}
# Every suite reproduces the paper, so every run uses its exact training recipe (no
# lr warm-up, no gradient clipping), not routec's defaults for new networks.
SUITES = {suite: {name: {"preset": "paper", **run} for name, run in runs.items()}
          for suite, runs in SUITES.items()}
# Beyond the paper: every other point of the page is one training seed (0). These twins
# of four points, the same settings at seeds 1 and 2, measure how far a point moves with
# the seed alone, the yardstick for differences between single runs.
SEED_TWINS: dict[str, tuple[str, ...]] = {"hybrid-static": ("n2", "n4"),
                                          "hybrid-actor": ("k2e-9", "k8e-9")}
EXTRA_SEEDS = (1, 2)
SEED_SUITES = {f"{base}-seeds": base for base in SEED_TWINS}  # seeds suite → its base suite
SUITES.update({
    suite: {f"{run}-s{seed}": {**SUITES[base][run], "seed": seed}
            for run in SEED_TWINS[base] for seed in EXTRA_SEEDS}
    for suite, base in SEED_SUITES.items()})


def seed_twin(suite: str, run: str) -> tuple[str, str, int] | None:
    """(base suite, base run, seed) of a run of a seeds suite; None for any other run."""
    base = SEED_SUITES.get(suite)
    if base is None or "-s" not in run:
        return None
    twin, seed = run.rsplit("-s", 1)
    return base, twin, int(seed)


# -- the paper's figures, and the suites each of their panels shows ----------------------
@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    suites: tuple[str, ...]


@dataclass(frozen=True)
class FigureSpec:
    key: str
    title: str
    caption: str
    kind: str  # "curves" (accuracy vs MACs), "dataflow" (node-link), "heatmaps"
    panels: tuple[Panel, ...] = ()
    timing: str = ""  # a file under the records root: the networks on the clock


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("fig5", "Fig. 5: hybrid MNIST/CIFAR-10, accuracy vs computation",
               "Static chains of n = 1..8 columns against each routing strategy over the "
               "k_cpt grid (one point per network; the dynamic-k_cpt actor is one network "
               "evaluated at each k_cpt, its routers reading k_cpt as the paper does and, "
               "beyond the paper, at every layer). The second panel holds the ablations of "
               "§5.2–5.4.",
               "curves", (
                   Panel("strategies", "hybrid: routing strategies (§5.1, §5.5)", (
                       "hybrid-static", "hybrid-actor", "hybrid-critic",
                       "hybrid-critic-optimistic", "hybrid-critic-clserr",
                       "hybrid-actor-dynamic", "hybrid-actor-dynamic-listen")),
                   Panel("dynamic", "hybrid: one network for every k_cpt (§5.5), two "
                         "conditionings, two budgets", (
                             "hybrid-static", "hybrid-actor", "hybrid-actor-dynamic",
                             "hybrid-actor-dynamic-listen", "hybrid-actor-dynamic-x2",
                             "hybrid-actor-dynamic-listen-x2")),
                   Panel("ablations", "hybrid: ablations and the tree (§5.2–5.4)", (
                       "hybrid-static", "hybrid-actor", "hybrid-actor-nokdec",
                       "hybrid-actor-regdhat", "hybrid-actor-notalr", "hybrid-critic",
                       "hybrid-critic-notalr", "hybrid-actor-tree")))),
    FigureSpec("fig6", "Figs. 6 and 7: dataflow through actor networks",
               "Node-link diagrams of the test split's dataflow (Fig. 6: the chain; Fig. 7: "
               "the tree with 2- and 3-way junctions; and the chain on CIFAR-2).",
               "dataflow", (
                   Panel("chain", "Fig. 6: hybrid-actor", ("hybrid-actor",)),
                   Panel("tree", "Fig. 7: hybrid-actor-tree", ("hybrid-actor-tree",)),
                   Panel("cifar2", "Fig. 6-style: cifar2-actor", ("cifar2-actor",)))),
    FigureSpec("fig8", "Fig. 8: dataflow over the course of training",
               "Fraction of examples classified at each exit over training, for every "
               "recorded routed network.", "heatmaps"),
    FigureSpec("fig9", "Fig. 9: the task's difficulty distribution (§5.6)",
               "CIFAR-2 (horse | other), CIFAR-5 (cat, deer, dog, horse | other) and CIFAR-10: "
               "static chains against actor networks, as in Fig. 5.", "curves", tuple(
                   Panel(d, d, (f"{d}-static", f"{d}-actor"))
                   for d in ("cifar2", "cifar5", "cifar10"))),
    FigureSpec("fig10", "Fig. 10: model capacity (§5.7)",
               "CIFAR-10 with the chain ×1, ×2 and ×3 wide (every convolution's output "
               "channels multiplied) and k_cpt divided by 1, 4 and 9.", "curves", (
                   Panel("x1", "CIFAR-10, ×1 wide", ("cifar10-static", "cifar10-actor")),
                   *(Panel(f"x{w}", f"CIFAR-10, ×{w} wide (k_cpt ÷{w * w})",
                           (f"cifar10-static-x{w}", f"cifar10-actor-x{w}"))
                     for w in WIDTHS))),
    FigureSpec("resnet", "Beyond the paper: a ResNet-20 chain on CIFAR-10",
               "specs/resnet_chain.route: CIFAR ResNet-20 with an exit after each of its "
               "three stages. Static prefixes (stage 1; stages 1-2; the whole ResNet-20) "
               "against actor networks over k_cpt and against one multi-exit network "
               "(every exit trained jointly) routed by a confidence threshold, as "
               "early-exit work deploys it (one point per threshold; its MACs include the "
               "exits evaluated and not taken).", "curves", (
                   Panel("cifar10", "CIFAR-10, ResNet-20 chain", (
                       "cifar10-resnet-static", "cifar10-resnet-actor",
                       "cifar10-resnet-multiexit")),)),
    FigureSpec("trained", "Beyond the paper: routing a ResNet-20 trained elsewhere",
               "A CIFAR ResNet-20 trained in plain PyTorch (examples/train_cifar_resnet.py), "
               "cut after layer1.1, layer2.0 and layer3.0 with its weights frozen "
               "(examples/resnet20.route). The model alone and its prefixes with a trained "
               "exit (static), the actor over k_cpt, the same exits trained alone and "
               "routed by confidence thresholds (SDN, MSDNet), and the actor fine-tuning "
               "the backbone too.", "curves", (
                   Panel("cifar10", "CIFAR-10, a trained ResNet-20, frozen", (
                       "cifar10-r20-static", "cifar10-r20-actor", "cifar10-r20-multiexit",
                       "cifar10-r20-finetune")),),
               timing="time-trained.json"),  # bench/trained_backbone.py
)
