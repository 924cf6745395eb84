"""Named suites: each a list of runs (run name → settings), as in the paper's Figs. 5, 9.

A suite is data, not code: it says which spec, strategy, dataset and k_cpt each
run uses. The budget (iterations) and the data root come from the command line,
so the same suite runs at a CPU budget here and at the full 80,000 iterations
elsewhere.
"""
from __future__ import annotations

from typing import Any

from routec.train.config import K_CPT_GRID

FULL_ITERATIONS = 80_000
CPU_ITERATIONS = 3_000


def _k_name(k: float) -> str:
    return f"k{k * 1e9:g}e-9"


def _grid(prefix: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {_k_name(k): {**prefix, "k_cpt": k} for k in K_CPT_GRID}


def _static(data: str) -> dict[str, dict[str, Any]]:
    return {f"n{n}": {"spec": "paper_chain", "strategy": "static", "static_columns": n,
                      "data": data} for n in range(1, 9)}


def _actor(data: str, **extra: Any) -> dict[str, dict[str, Any]]:
    return _grid({"spec": "paper_chain", "strategy": "actor", "data": data, **extra})


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
    "hybrid-actor-nokdec": _actor("hybrid", k_dec=0.0),
    "hybrid-actor-notalr": _actor("hybrid", talr=False),
    "hybrid-actor-tree": _grid({"spec": "paper_tree", "strategy": "actor", "data": "hybrid"}),
    **{f"{d}-static": _static(d) for d in ("cifar2", "cifar5", "cifar10")},
    **{f"{d}-actor": _actor(d) for d in ("cifar2", "cifar5", "cifar10")},
}
