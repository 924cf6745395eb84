"""Fuzzing reaches training: random specs that compile also train, route and export.

For each random well-formed spec that compiles (small images, no unlucky numbers;
see ``random_specs`` in tests/test_fuzz.py), with a random small number of classes:

* one training step (routec's ``strategy_step``, then TALR, clipping and SGD as the
  training loop does them) with every strategy that applies: actor (fixed and dynamic
  k_cpt, every-layer conditioning, regularised d̂), critic (pragmatic and optimistic,
  cross-entropy and 0/1 error, closed and sampled, MAC and latency cost), static
  (the whole network, or a static prefix) and multi-exit; the loss, the gradients'
  effect and the new weights must be finite;
* one network (static or dynamic k_cpt, random weights so that examples spread over
  the exits) routed by every available engine on batches of 0, 1 and 3 images: each
  must reach the exits ``net.route`` reaches with close logits and equal MACs, and
  ``net.route`` must agree with the dense pass (argmax routing of ``forward``);
* the same network exported (``export_network``) and loaded by ``routec.deploy``,
  which must route the batches as ``net.route`` does.

Building a network for a strategy or building an engine may refuse with a
:class:`RoutecError` that has a message (a strategy that needs junctions, a static
prefix longer than the network, a network too large for memory, an engine that
cannot run here): a clean refusal, counted. Anything raised after that, or any other
exception anywhere, fails the test. Examples whose routing is decided by a near-tie
of router scores (margin under 1e-3) are not compared exit by exit: rounding may
take either way there. The compiled engine (torch.compile, seconds per segment)
routes one spec in 40 and the one fixed example.

``--fuzz-train-specs`` sets the number of specs (default 12, about 35 s on one
core). The deep run (10³ specs; its result is in docs/fuzzing.md)::

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/test_fuzz_training.py -s \\
        --fuzz-train-specs 1000
"""
from __future__ import annotations

import collections
import contextlib
import copy
import math
import tempfile
import time
import zlib

import pytest
import torch
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import routec.graph
import routec.parse
from helpers import calibrate, images, randomise
from routec.engine import available_engines, optimize_for_inference
from routec.errors import RoutecError, SpecError
from routec.train.config import K_CPT_GRID, make_config
from routec.train.costs import node_costs, node_params
from routec.train.loop import strategy_step
from routec.train.model import build_network
from routec.train.sgd import SGD
from routec.train.talr import apply_talr, talr_scales
from routec.train.tree import inference_leaf, inference_policy, reach, Tree
from test_fuzz import FILE, SMALL, random_specs, settings_for

pytest.importorskip("onnxruntime")

BATCH = 4  # training batch
ROUTE_SIZES = (0, 1, 3)
MARGIN = 1e-3  # router-score margin under which a decision is a tie
ATOL, RTOL = 1e-3, 1e-3
COMPILED_EVERY = 40  # the compiled engine routes one spec in 40 (by its text's CRC-32)

# (name, config settings, needs junctions) of every training step tried: actor and
# critic apply only to networks with junctions (and refuse the others)
STEPS: list[tuple[str, dict, bool]] = [
    ("actor", {"strategy": "actor", "k_cpt": 1e-9}, True),
    ("actor-dynamic-every-layer-dhat", {"strategy": "actor", "k_cpt": "dynamic",
                                        "k_cpt_conditioning": "every-layer",
                                        "regularise_dhat": True}, True),
    ("critic", {"strategy": "critic", "k_cpt": 4e-9}, True),
    ("critic-optimistic-classification-dynamic", {
        "strategy": "critic", "k_cpt": "dynamic", "utility": "optimistic",
        "critic_error": "classification"}, True),
    ("critic-sampled", {"strategy": "critic", "critic_mode": "sampled", "k_cpt": 2e-9}, True),
    ("critic-latency", {"strategy": "critic", "k_cpt": 0.04, "cost": "latency",
                        "cost_table": "table.json"}, True),  # priced in train_step
    ("actor-paper-preset", {"strategy": "actor", "k_cpt": 0.0, "preset": "paper"}, True),
    ("static", {"strategy": "static"}, False),
    ("multi-exit", {"strategy": "multi-exit"}, False),
]


class Tally:
    """What the run did: counts of specs, steps, engine routes, exports, refusals."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.refusals: collections.Counter[str] = collections.Counter()
        self.seconds: collections.Counter[str] = collections.Counter()
        self.messages: dict[str, str] = {}  # the first message of each kind of refusal

    @contextlib.contextmanager
    def timed(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t0

    def refused(self, stage: str, err: RoutecError) -> None:
        """A refusal is clean when it is a RoutecError that says something."""
        assert isinstance(err, RoutecError)
        assert err.message.strip() and err.render().strip(), repr(err)
        key = f"{stage}: {type(err).__name__}"
        self.refusals[key] += 1
        self.messages.setdefault(key, err.message.splitlines()[0][:120])

    def summary(self) -> str:
        c = self.counts
        lines = [f"specs {c['specs']}, training steps {c['steps']}, "
                 f"engine routes {c['routes']}, exports {c['exports']}, "
                 f"deployed routes {c['deployed']}, "
                 f"exits compared {c['compared']} (near-ties skipped {c['ties']})"]
        lines += [f"  {k}: {v}" for k, v in sorted(c.items()) if k.startswith("step ")]
        lines += [f"  engine {k}: {v}" for k, v in sorted(c.items()) if k in ENGINE_NAMES]
        lines += [f"  refused ({k}): {v}, e.g. {self.messages[k]}"
                  for k, v in sorted(self.refusals.items())]
        lines += ["  seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in
                                             sorted(self.seconds.items()))]
        return "\n".join(lines)


ENGINE_NAMES = set(available_engines())


def compiles(text: str, classes: int) -> bool:
    try:
        routec.graph.build_graph(routec.parse.parse_spec(text, FILE), classes=classes)
    except SpecError:
        return False
    return True


def build(text: str, classes: int, strategy: str, *, dynamic: bool = False,
          static_columns: int | None = None, kcpt_unit: float | None = None):
    return build_network(FILE, text, classes=classes, dynamic=dynamic,
                         static_columns=static_columns, strategy=strategy, batch=BATCH,
                         kcpt_unit=kcpt_unit)


def train_step(cfg, net, seed: int) -> None:
    """One step as routec.train.loop.train takes it, on random images and labels."""
    gen = torch.Generator().manual_seed(seed)
    x = images(BATCH, tuple(net.INPUT_SHAPE), seed=seed)
    y = torch.randint(net.CLASSES, (BATCH,), generator=gen)
    if cfg.dynamic:
        grid = torch.tensor(cfg.k_cpt_grid, dtype=torch.float32)
        k = grid[torch.randint(len(grid), (BATCH,), generator=gen)]
    else:
        k = float(cfg.k_cpt)
    node_cost = None
    if cfg.cost == "latency":  # a price per node in ms, as a cost table gives it
        node_cost = node_costs([m * 1e-10 + 1e-6 for m in net.MACS])
    net.train()
    opt = SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    res = strategy_step(cfg, net, net, x, y, k, cfg.effective_tau, gen, node_cost)
    tree = Tree.of(net)
    assert math.isfinite(float(res.loss.detach())), float(res.loss)
    assert res.logits.shape == (BATCH, net.CLASSES) and res.leaf.shape == (BATCH,)
    assert res.reach.shape == (BATCH, tree.size)
    assert 0 <= int(res.leaf.min()) and int(res.leaf.max()) < len(tree.leaves)
    opt.zero_grad(set_to_none=True)
    res.loss.backward()
    if cfg.talr and cfg.strategy in ("actor", "critic"):
        apply_talr(node_params(net), talr_scales(res.reach))
    if cfg.clip_grad_norm:
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad_norm)
    opt.step()
    bad = [k for k, v in net.state_dict().items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    assert not bad, f"non-finite after one step: {bad}"


def dense_reference(net, net64, x: torch.Tensor, k: torch.Tensor | None):
    """(leaf, logits, decided, slack) from the dense pass under argmax routing.

    A network whose batch-norms see near-constant features amplifies rounding: float32
    itself is then far from exact. So the pass is also made in float64: ``decided``
    marks the examples whose every junction on their path has a winner by more than
    MARGIN plus 4× the float32 error of its scores, and ``slack`` is 4× the float32
    error of each example's logits, which an engine may add to the tolerance."""
    tree = Tree.of(net)
    n = x.shape[0]
    with torch.inference_mode():
        out = net(x, k_cpt=k)
        exact = net64(x.double(), k_cpt=None if k is None else k.double())
    leaf = inference_leaf(tree, out.scores, n) if n else torch.zeros(0, dtype=torch.long)
    rows = torch.arange(n)
    logits = out.leaf_logits[leaf, rows]
    slack = 4 * (logits.double() - exact.leaf_logits[leaf, rows]).abs().amax(dim=1)
    decided = torch.ones(n, dtype=torch.bool)
    if tree.junctions and n:
        on_path = reach(tree, inference_policy(out.scores), n)
        for j, s, s64 in zip(tree.junctions, out.scores, exact.scores):
            top = s.topk(2, dim=1).values
            error = (s.double() - s64).abs().amax(dim=1)
            close = (top[:, 0] - top[:, 1]).double() < MARGIN + 4 * error
            decided &= ~(close & (on_path[:, j] > 0))
    return leaf, logits, decided, slack


def same_routes(tally: Tally, what: str, ref_leaf, ref_logits, ref_macs, decided, slack,
                leaf, logits, macs) -> None:
    """Same exits, close logits and equal MACs where the decisions are clear."""
    n = ref_leaf.shape[0]
    leaf, logits, macs = (torch.as_tensor(leaf), torch.as_tensor(logits),
                          torch.as_tensor(macs))
    assert leaf.shape == (n,) and logits.shape == ref_logits.shape, (what, leaf.shape,
                                                                     logits.shape)
    assert macs.shape == (n,), what
    assert bool(torch.isfinite(logits).all()), what
    d = decided
    tally.counts["compared"] += int(d.sum())
    tally.counts["ties"] += int((~d).sum())
    assert torch.equal(leaf[d], ref_leaf[d]), (what, leaf, ref_leaf)
    diff = (logits[d].double() - ref_logits[d].double()).abs()
    allowed = ATOL + RTOL * ref_logits[d].double().abs() + slack[d, None]
    assert bool((diff <= allowed).all()), (what, float(diff.max()), float(slack.max()))
    assert torch.equal(macs[d].double(), ref_macs[d].double()), (what, macs, ref_macs)


def route_everywhere(tally: Tally, net, seed: int, dynamic: bool, compiled: bool
                     ) -> None:
    """Every engine and the exported network route like ``net.route``."""
    shape = tuple(net.INPUT_SHAPE)
    randomise(net, seed=seed)
    k_calib = torch.full((64,), 8e-9) if dynamic else None
    calibrate(net, images(64, shape, seed=seed + 1), k_cpt=k_calib)
    net64 = copy.deepcopy(net).double()
    batches = []
    for n in ROUTE_SIZES:
        x = images(n, shape, seed=seed + 2 + n)
        k = (torch.tensor(K_CPT_GRID, dtype=torch.float32)[torch.arange(n) % 8]
             if dynamic else None)
        with torch.inference_mode():
            ref = net.route(x, k_cpt=k)
        leaf, logits, decided, slack = dense_reference(net, net64, x, k)
        path = torch.tensor(net._path_macs, dtype=torch.float64)[
            torch.tensor(net.LEAVES)[ref.leaf]] if n else torch.zeros(0, dtype=torch.float64)
        # net.route against the dense pass, then everything else against net.route
        same_routes(tally, f"route n={n}", leaf, logits, path, decided, slack,
                    ref.leaf, ref.logits, ref.macs)
        batches.append((x, k, ref, decided, slack))
    for name in sorted(ENGINE_NAMES):
        if name == "compiled" and not compiled:
            continue  # torch.compile takes seconds per segment: a sample of the specs
        with tally.timed(name):
            try:
                eng = optimize_for_inference(net, name)
            except RoutecError as err:
                tally.refused(f"engine {name}", err)
                continue
            for x, k, ref, decided, slack in batches:
                out = eng.route(x, k_cpt=k)
                same_routes(tally, f"{name} n={x.shape[0]}", ref.leaf, ref.logits,
                            ref.macs, decided, slack, out.leaf, out.logits, out.macs)
                tally.counts["routes"] += 1
        tally.counts[name] += 1
    from routec import deploy
    from routec.engine.onnx_export import export_network

    with tally.timed("export"), tempfile.TemporaryDirectory() as tmp:
        export_network(net, tmp)
        tally.counts["exports"] += 1
        deployed = deploy.load(tmp, threads=1)
        for x, k, ref, decided, slack in batches:
            logits, leaf, macs = deployed.route(x.numpy(), None if k is None else k.numpy())
            same_routes(tally, f"deployed n={x.shape[0]}", ref.leaf, ref.logits, ref.macs,
                        decided, slack, torch.from_numpy(leaf), torch.from_numpy(logits),
                        torch.from_numpy(macs))
            tally.counts["deployed"] += 1


def check_spec(tally: Tally, text: str, classes: int, dynamic: bool, columns: int,
               seed: int, force_compiled: bool = False) -> None:
    """Train one step per strategy, then route and export one network of ``text``."""
    torch.manual_seed(seed)
    tally.counts["specs"] += 1
    for name, values, needs_junctions in STEPS:
        cfg = make_config({"spec": FILE, "batch": BATCH, **values})
        static = None
        if cfg.strategy == "static":
            g = routec.graph.build_graph(routec.parse.parse_spec(text, FILE), classes=classes)
            static = None if len(g.leaves) == 1 else columns
        try:
            with tally.timed("build"):
                g, net = build(text, classes, cfg.strategy, dynamic=cfg.dynamic,
                               static_columns=static, kcpt_unit=cfg.router_kcpt_unit)
        except RoutecError as err:
            if needs_junctions and "needs junctions" in err.message:
                continue  # the strategy does not apply: it said so
            tally.refused(f"build for {name}", err)
            continue
        if needs_junctions:
            assert g.junctions
        with tally.timed("train"):
            train_step(cfg, net, seed)
        tally.counts["steps"] += 1
        tally.counts[f"step {name}"] += 1
    try:
        g, net = build(text, classes, "multi-exit", dynamic=dynamic)
    except RoutecError as err:
        tally.refused("build for routing", err)
        return
    compiled = force_compiled or zlib.crc32(text.encode()) % COMPILED_EVERY == 0
    route_everywhere(tally, net, seed, dynamic, compiled)


def test_random_specs_train_route_and_export(request) -> None:
    tally = Tally()
    count = request.config.getoption("--fuzz-train-specs")
    t0 = time.perf_counter()

    @settings(settings_for(request), max_examples=count)
    @given(text=random_specs(**SMALL), classes=st.integers(2, 5), dynamic=st.booleans(),
           columns=st.integers(1, 3), seed=st.integers(0, 2 ** 16),
           force_compiled=st.just(False))
    # the compiled engine, on one spec at least whatever the sample
    @example(text="network n (input = 1x1x1) {\ncolumn c0 = bn\nroute c0 -> either "
                  "{ exit | c0 -> exit }\n}\n", classes=2, dynamic=True, columns=1, seed=0,
             force_compiled=True)
    # batch-norms of constant features: float32 logits 2% off exact (the tolerance's slack)
    @example(text="network n (input = 1x8x8, classes = 10) {\nrouter r0 = linear\n"
                  "router r1 = linear\nexit e0 = linear\nexit e1 = linear\n"
                  "column c0(p) = conv(p) -> relu -> conv(p)\n"
                  "column c1 = gap -> depthwise(stride = 1) -> relu -> bn\n"
                  "def d0 = c0(8) -> c1 -> c1 -> either { exit | c1 -> c1 -> exit(e1) }\n"
                  "route c0(1) -> c1 -> c1 -> either(router = r0) { c1 -> c1 -> d0 | "
                  "c1 -> c1 -> c0(1) -> either(router = r1) { c0(2) -> c0(3) -> c1 -> "
                  "exit(e0) | exit(e1) } }\n}\n",
             classes=2, dynamic=True, columns=1, seed=3800, force_compiled=False)
    def prop(text: str, classes: int, dynamic: bool, columns: int, seed: int,
             force_compiled: bool) -> None:
        assume(compiles(text, classes))
        check_spec(tally, text, classes, dynamic, columns, seed, force_compiled)
        if tally.counts["specs"] % 100 == 0:  # progress of a long run (shown with -s)
            print(f"\nfuzz-training: {tally.counts['specs']} specs passed, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)

    prop()
    seconds = time.perf_counter() - t0
    print(f"\nfuzz-training: {tally.summary()}\n  {seconds:.0f} s")
    # every spec got somewhere: most trained, routed and exported
    assert tally.counts["exports"] >= 0.9 * tally.counts["specs"], tally.summary()
    assert tally.counts["compared"] > 0 and tally.counts["steps"] > 0
