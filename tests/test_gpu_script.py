"""bench/gpu.sh's CPU dry run (--device cpu --quick): the one command a GPU machine runs
writes its JSON and markdown with every measurement and target it promises."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from routec.tree import RoutingTree
from helpers import compile_bundled

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), str(out), "--device", "cpu",
                           "--quick"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "gpu.json").read_text())
    assert result["quick"] and result["device"] == "cpu"
    assert "cudagraphs" not in result["engines"]  # it needs CUDA
    assert {(r["spec"], r["batch"]) for r in result["inference"]} == {
        (s, b) for s in ("paper_chain", "resnet_chain") for b in (1, 16)}
    for r in result["inference"]:
        for e in r["engines"]:
            assert r["throughput"][f"routed/{e}"] > 0 and r["throughput"][f"static/{e}"] > 0
        # the routed MACs are the exits' path MACs weighted by the exit mix (independent
        # of the bench's own averaging)
        topo = RoutingTree.of(compile_bundled(r["spec"])[1])
        routed = sum(f * m for f, m in zip(r["exit_mix"], topo.leaf_macs))
        assert abs(r["macs"]["routed"] - routed) <= 1e-6 * routed
        if r["spec"] == "paper_chain" and r["batch"] == 16:
            # the fixed mix 50/10/10/10/5/5/5/5 % over a batch of 16, rounded per exit:
            # every exit used, the first the most
            assert all(f > 0 for f in r["exit_mix"]) and len(r["exit_mix"]) == 8
            assert r["exit_mix"][0] == max(r["exit_mix"]) > r["exit_mix"][1]
    runs = {(t["strategy"], t["precision"]) for t in result["training"]}
    assert runs == {(s, p) for s in ("actor", "static") for p in ("fp32", "bf16")}
    assert all(t["seconds_per_iteration"] > 0 for t in result["training"])
    names = [t["target"] for t in result["targets"]]
    assert any("realised" in n for n in names)
    assert sum("batch 1, deepest exit" in n for n in names) == 2 * len(result["engines"])
    assert sum(n.startswith("training") for n in names) == 2
    md = (out / "gpu.md").read_text()
    for section in ("## Inference", "## Training", "## Targets", "quick dry run"):
        assert section in md
    assert md.count("| paper_chain | actor |") == 2
