"""Specs too big for the machine: compile warns, train refuses before allocating, with
the estimate on one line; the estimate itself is checked against the built network."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

import routec
from routec.graph.memory import available_memory, estimate

# Eight 65,536-channel convs: 2.5e11 parameters, a terabyte of weights (no machine has it).
HUGE = """network huge (input = 3x32x32, classes = 10) {
    column c1 = conv(16)
    column c2 = conv(65536) -> conv(65536) -> conv(65536) -> conv(65536)
                -> conv(65536) -> conv(65536) -> conv(65536) -> conv(65536)
    route c1 -> either { exit | c2 -> exit }
}
"""


def routec_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # The peak resident size of this process alone: VmHWM belongs to the address space
    # made at exec. (ru_maxrss would also carry the parent's size: Linux keeps the
    # high-water mark of the address space the child replaced, the test runner's.)
    code = ("import sys\nfrom routec.cli import main\nrc = main(sys.argv[1:])\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
            "print('maxrss_kb', hwm[0].split()[1])\n"
            "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**__import__("os").environ,
                                                       "ROUTEC_NO_PROGRESS": "1"})


def test_compile_warns_with_the_estimate(tmp_path: Path) -> None:
    (tmp_path / "huge.route").write_text(HUGE)
    r = routec_cli("compile", "huge.route", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    params = routec.compile_network("huge.route", text=HUGE).graph.total_params
    assert params > 7 * 65536 * 65536 * 9  # seven 65536 -> 65536 3x3 convs
    warning = [l for l in r.stderr.splitlines() if l.startswith("warning:")]
    assert len(warning) == 1 and f"{params:,} parameters" in warning[0]
    assert "routec train would refuse it" in warning[0] and "Traceback" not in r.stderr


def test_train_refuses_before_allocating(tmp_path: Path) -> None:
    (tmp_path / "huge.route").write_text(HUGE)
    r = routec_cli("train", "huge.route", "--data", "synthetic", "--iterations", "1",
                   "--out", "run", cwd=tmp_path)
    assert r.returncode == 2
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr
    assert errors[0].startswith("error: training network 'huge' at batch 128 needs about ")
    assert "but this machine has" in errors[0]
    # nothing near the network's size was ever allocated (the weights alone are ~1 TB)
    maxrss_gb = int(r.stdout.split("maxrss_kb")[1]) / 1e6
    assert maxrss_gb < 4
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_network_that_fits_is_accepted_and_its_estimate_is_its_size() -> None:
    """Weights: 4 bytes per parameter of the built module. Activations: every layer
    output of the dense pass (counted with forward hooks on the built module), twice."""
    net_def = routec.compile_network("resnet_chain")
    net = net_def.build()
    batch = 8
    est = estimate(net_def.graph, batch)
    assert est.weight_bytes == 4 * sum(p.numel() for p in net.parameters())
    assert est.optimizer_bytes == 2 * est.weight_bytes
    seen = []
    leaves = [m for m in net.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.numel() if isinstance(o, torch.Tensor) else 0)) for m in leaves]
    with torch.no_grad():
        net(torch.rand(batch, 3, 32, 32))
    for h in hooks:
        h.remove()
    counted = 2 * 4 * sum(seen)
    assert 0.8 * counted <= est.activation_bytes <= 1.2 * counted
    have = available_memory("cpu")
    assert have is not None and have[0] > est.total  # this machine can train it
