"""The exit-fractions cell: every exit for a chain, the busy ones by name for a tree."""
from __future__ import annotations

import re

import torch

from routec.report.summary import LISTED_EXITS, exit_fractions_text


def test_a_chain_lists_every_exit_in_order() -> None:
    fractions = [0.25, 0.0, 0.5, 0.25]
    cells = exit_fractions_text([f"exit_c{i}" for i in range(1, 5)], fractions).split(" / ")
    assert [float(c) for c in cells] == fractions


def test_a_network_with_many_exits_names_the_busy_ones_and_accounts_for_the_rest() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 47
    share = torch.rand(n, generator=gen) ** 8  # most exits nearly idle, a few busy
    share[::5] = 0.0  # and some wholly idle
    share /= share.sum()
    names = [f"exit_c{i}_{j}" for i, j in zip(range(n), range(n, 0, -1))]
    text = exit_fractions_text(names, share.tolist())
    listed, rest = text.split("; ")
    shown = dict((m.group(1), float(m.group(2)))
                 for m in re.finditer(r"(\S+) (\d\.\d\d)(?:,|$)", listed))
    busy = {names[i].removeprefix("exit_"): float(share[i]) for i in range(n)
            if share[i] >= 0.005}
    assert list(shown) == list(busy)  # the busy exits, in the network's order
    assert all(abs(shown[k] - v) <= 0.005 for k, v in busy.items())
    idle = [float(f) for f in share if f < 0.005]
    count, total = re.fullmatch(r"(\d+) other exits under 0\.005 each \((\d\.\d+) in all\)",
                                rest).groups()
    assert int(count) == len(idle) == n - len(busy) > 0
    assert abs(float(total) - sum(idle)) < 0.0005
    assert n > LISTED_EXITS


def test_idle_exits_are_called_idle() -> None:
    fractions = [0.5, 0.5] + [0.0] * LISTED_EXITS
    text = exit_fractions_text([f"exit_{i}" for i in range(len(fractions))], fractions)
    assert text == f"0 0.50, 1 0.50; {LISTED_EXITS} other exits under 0.005 each, all idle"


def test_fig8_folds_a_trees_idle_exits_into_one_row_that_keeps_the_sums() -> None:
    from routec.report.plots import BUSY, FOLD_EXITS, Heatmap, fold_idle_exits

    gen = torch.Generator().manual_seed(2)
    n, t = 30, 12
    share = torch.rand(n, t, generator=gen) ** 10
    share /= share.sum(0, keepdim=True)
    names = [f"exit_{i}" for i in range(n)]
    tree = Heatmap(names, list(range(0, 100 * t, 100)), share.tolist(), "train",
                   list(range(n)))
    chain = Heatmap(names[:FOLD_EXITS], tree.iterations,
                    (share[:FOLD_EXITS] / share[:FOLD_EXITS].sum(0)).tolist(), "train")
    (_, folded), = fold_idle_exits([("tree", tree)])
    busy = [i for i in range(n) if float(share[i].max()) >= BUSY]
    assert 0 < len(busy) < n
    assert folded.exits == [names[i] for i in busy] + [f"{n - len(busy)} other exits"]
    assert folded.fractions[:-1] == [tree.fractions[i] for i in busy]
    assert torch.allclose(torch.tensor(folded.fractions).sum(0), torch.ones(t))
    assert folded.path_macs == busy + [0]
    assert fold_idle_exits([("chain", chain)])[0][1] is chain  # few exits: all shown
