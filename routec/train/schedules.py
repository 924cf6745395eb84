"""Learning-rate and temperature schedules: continuous exponential decay by half-life."""
from __future__ import annotations


def halving(start: float, halflife: float, iteration: int) -> float:
    """start · 2^(−t/halflife): the paper's lr (half-life 1e4) and τ (2e4 in its scripts)."""
    return start * 2.0 ** (-iteration / halflife)


def warmup_factor(iteration: int, warmup: int) -> float:
    """Linear warm-up: (t+1)/warmup for the first ``warmup`` iterations, then 1."""
    if warmup <= 0:
        return 1.0
    return min(1.0, (iteration + 1) / warmup)


def learning_rate(start: float, halflife: float, warmup: int, iteration: int) -> float:
    """The lr of iteration t: the paper's halving schedule times the linear warm-up."""
    return halving(start, halflife, iteration) * warmup_factor(iteration, warmup)
