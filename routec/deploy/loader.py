"""Loading an exported routed network (manifest.json + one ONNX file per node).

Needs numpy and onnxruntime only. The manifest is checked against the files before
anything runs: every node file must exist, hash to the recorded sha256 and declare
exactly the recorded inputs and outputs.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from routec.deploy.runner import SegmentRunner
from routec.deploy.topology import Segment, Topology, level_needs
from routec.errors import RoutecError

FORMAT = "routec-routed-onnx"
VERSION = 1
MANIFEST = "manifest.json"


class ManifestError(RoutecError):
    """An export directory whose manifest and ONNX files disagree."""


def make_call(sess: Any, seg: Segment, inputs: list[str], outputs: list[str]) -> Any:
    """A SegmentRunner callable: feed the session's inputs, split its outputs.

    Output ``oI`` is level I of the segment's pyramid; levels it does not output (no
    later node reads them) are None in the tuple passed on.
    """
    run = sess._sess.run if hasattr(sess, "_sess") else sess.run  # skip per-call checks
    names = list(outputs)
    has_head = seg.head >= 0
    stem = inputs[:1] == ["x"]
    takes_k = inputs[-1:] == ["k_cpt"]
    level_in = [(n, int(n[1:])) for n in inputs if n.startswith("h")]
    level_out = [int(n[1:]) for n in names if n.startswith("o")]
    dense = level_out == list(range(len(level_out)))
    width = max(level_out) + 1 if level_out else 0
    opts = None
    if run is not sess.run:
        import onnxruntime as ort

        opts = ort.RunOptions()

    def call(h: tuple[np.ndarray, ...], k: np.ndarray | None
             ) -> tuple[tuple[np.ndarray, ...], np.ndarray | None]:
        if stem:
            feed = {"x": h[0]}
        else:
            feed = {name: h[i] for name, i in level_in}
        if takes_k:
            feed["k_cpt"] = k
        res = run(names, feed, opts)
        y = res.pop() if has_head else None
        if dense:
            return tuple(res), y
        levels: list[Any] = [None] * width
        for i, a in zip(level_out, res):
            levels[i] = a
        return tuple(levels), y

    return call


def _check(cond: bool, path: Path, message: str) -> None:
    if not cond:
        raise ManifestError(f"{path}: {message}",
                            hint="re-export with `routec export RUN -o DIR`")


def load(directory: str | Path, threads: int = 0) -> "DeployedNetwork":
    """Load and verify an export directory."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise RoutecError("routec.deploy needs onnxruntime, which is not installed",
                          hint="pip install onnxruntime") from None

    d = Path(directory)
    mpath = d / MANIFEST
    _check(mpath.is_file(), mpath, "no manifest.json here")
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ManifestError(f"{mpath}: not valid JSON ({err.msg} at line {err.lineno})") \
            from None
    _check(m.get("format") == FORMAT and m.get("version") == VERSION, mpath,
           f"not a {FORMAT} v{VERSION} manifest")
    try:
        topo = Topology.from_dict(m["network"])
        records = {int(r["index"]): r for r in m["nodes"]}
    except (KeyError, TypeError, ValueError) as err:
        raise ManifestError(f"{mpath}: malformed manifest ({err!r})") from None
    _check(sorted(records) == list(range(len(topo.nodes))), mpath,
           f"lists nodes {sorted(records)}, the network has {len(topo.nodes)}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    segments = topo.segments(merge=False)
    calls = []
    for seg in segments:
        (node,) = seg.nodes
        r = records[node]
        _check(r.get("id") == topo.nodes[node] and r.get("kind") == topo.kinds[node], mpath,
               f"node {node} is {r.get('id')!r} ({r.get('kind')}) in 'nodes' but "
               f"{topo.nodes[node]!r} ({topo.kinds[node]}) in 'network'")
        f = d / r["file"]
        _check(f.is_file(), f, f"missing ONNX file for node '{r['id']}'")
        blob = f.read_bytes()
        _check(hashlib.sha256(blob).hexdigest() == r["sha256"], f,
               f"does not match the manifest (sha256 differs) for node '{r['id']}'")
        try:
            sess = ort.InferenceSession(blob, sess_options=opts,
                                        providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise ManifestError(f"{f}: ONNX Runtime cannot load it ({str(err)[:200]})") \
                from None
        got_in = [i.name for i in sess.get_inputs()]
        got_out = [o.name for o in sess.get_outputs()]
        _check(got_in == r["inputs"] and got_out == r["outputs"], f,
               f"declares inputs {got_in} and outputs {got_out}; the manifest says "
               f"{r['inputs']} and {r['outputs']}")
        calls.append(make_call(sess, seg, r["inputs"], r["outputs"]))
    reads: dict[int, set[int] | None] = {
        seg.index: {int(n[1:]) for n in records[seg.nodes[0]]["inputs"] if n.startswith("h")}
        for seg in segments}
    _, needs = level_needs(segments, reads)
    return DeployedNetwork(m, topo, SegmentRunner(topo, segments, calls, needs))


class DeployedNetwork:
    """A loaded export: ``route(images[, k_cpt])`` → (logits, exit index, MACs)."""

    def __init__(self, manifest: dict[str, Any], topology: Topology, runner: SegmentRunner
                 ) -> None:
        self.manifest = manifest
        self.topology = topology
        self.runner = runner
        self.class_names: list[str] = list(manifest["class_names"])
        self.exit_names: list[str] = list(manifest["exits"])
        self.input_shape = tuple(topology.input_shape)

    def route(self, images: np.ndarray, k_cpt: Any = None, policy: Any = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.runner.route(images, k_cpt, policy)

    def predict(self, images: np.ndarray, k_cpt: Any = None, batch: int = 500
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class index, exit index and MACs per image, in batches."""
        parts = [self.runner.route(images[s:s + batch], k_cpt)
                 for s in range(0, len(images), batch)] or [self.runner.route(images[:0], k_cpt)]
        logits = np.concatenate([p[0] for p in parts])
        return (logits.argmax(axis=1), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]))
