"""routec's SGD equals torch.optim.SGD step for step, and their checkpoints interchange."""
from __future__ import annotations

import subprocess
import sys

import torch

from routec.train.sgd import SGD


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 5))


def _steps(model: torch.nn.Module, opt, n: int, seed: int, lrs=(0.1, 0.05, 0.2)) -> None:
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        x = torch.randn(8, 3, 8, 8, generator=gen)
        loss = model(x).square().mean()
        for g in opt.param_groups:
            g["lr"] = lrs[i % len(lrs)]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def test_same_updates_as_torch_sgd() -> None:
    a, b = _model(0), _model(0)
    _steps(a, SGD(a.parameters(), lr=0.1, momentum=0.9), 7, seed=1)
    _steps(b, torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9), 7, seed=1)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_state_dicts_interchange_with_torch_sgd() -> None:
    """Train 4 steps with one optimiser, continue 3 with the other from its state."""
    ref = _model(0)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    _steps(ref, ref_opt, 4, seed=2)
    _steps(ref, ref_opt, 3, seed=3)
    for first, second in ((SGD, torch.optim.SGD), (torch.optim.SGD, SGD)):
        m = _model(0)
        o1 = first(m.parameters(), lr=0.1, momentum=0.9)
        _steps(m, o1, 4, seed=2)
        o2 = second(m.parameters(), lr=0.1, momentum=0.9)
        o2.load_state_dict(o1.state_dict())
        _steps(m, o2, 3, seed=3)
        for p, q in zip(m.parameters(), ref.parameters()):
            assert torch.equal(p, q), (first, second)


def test_building_it_does_not_import_the_compiler() -> None:
    code = ("import sys, torch\nfrom routec.train.sgd import SGD\n"
            "SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9).step()\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
