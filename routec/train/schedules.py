"""Learning-rate and temperature schedules: continuous exponential decay by half-life."""
from __future__ import annotations


def halving(start: float, halflife: float, iteration: int) -> float:
    """start · 2^(−t/halflife): the paper's lr (half-life 1e4) and τ (2e4 in its scripts)."""
    return start * 2.0 ** (-iteration / halflife)
