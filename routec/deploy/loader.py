"""Loading an exported routed network (manifest.json + one ONNX file per node).

Needs numpy and onnxruntime only. Everything is checked before anything runs: the
manifest's structure (routec.deploy.manifest), then every node file: inside the
export directory, hashing to the recorded sha256, declaring exactly the recorded
inputs and outputs and head widths that match the classes and ways.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from routec.deploy.inputs import InputConvention, InputError
from routec.deploy.manifest import (FORMAT, MANIFEST, VERSION, ManifestError, check_head_shapes,
                                    check_network, check_node_records, check_summary, need)
from routec.deploy.runner import SegmentRunner
from routec.tree import RoutingTree, Segment, level_needs
from routec.errors import RoutecError

__all__ = ["FORMAT", "MANIFEST", "VERSION", "ManifestError", "DeployedNetwork", "load",
           "make_call"]


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


def _reason(err: BaseException) -> str:
    """The first line of an exception's message, so the error stays one line."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_manifest(d: Path) -> dict[str, Any]:
    """The parsed manifest, its structure checked (no file is opened but manifest.json)."""
    mpath = d / MANIFEST
    need(mpath.is_file(), mpath, "no manifest.json here")
    try:
        text = mpath.read_text(encoding="utf-8")
    except OSError as err:
        raise ManifestError(f"{mpath}: cannot be read ({_reason(err)})") from None
    except ValueError as err:  # not UTF-8
        raise ManifestError(f"{mpath}: not valid JSON ({_reason(err)})") from None
    try:
        m = json.loads(text)
    except (ValueError, RecursionError) as err:  # malformed, too deep, too long a number
        raise ManifestError(f"{mpath}: not valid JSON ({_reason(err)})") from None
    need(isinstance(m, dict) and m.get("format") == FORMAT, mpath, f"not a {FORMAT} manifest")
    need(m.get("version") == VERSION, mpath,
         f"manifest version {m.get('version')!r}; this runner reads version {VERSION} "
         f"(re-export with `routec export RUN -o DIR`)")
    check_network(m.get("network"), mpath)
    check_summary(m, mpath)
    return m


def _node_session(ort: Any, opts: Any, r: dict[str, Any], f: Path, net: dict[str, Any],
                  index: int) -> Any:
    """An ONNX Runtime session for node file ``f``, after its hash and interface check out."""
    need(f.is_file(), f, f"missing ONNX file for node '{r['id']}'")
    blob = f.read_bytes()
    need(hashlib.sha256(blob).hexdigest() == r["sha256"], f,
         f"does not match the manifest (sha256 differs) for node '{r['id']}'")
    try:
        sess = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ManifestError(f"{f}: ONNX Runtime cannot load it ({_reason(err)[:200]})") from None
    got_in = [i.name for i in sess.get_inputs()]
    got_out = [o.name for o in sess.get_outputs()]
    need(got_in == r["inputs"] and got_out == r["outputs"], f,
         f"declares inputs {got_in} and outputs {got_out}; the manifest says "
         f"{r['inputs']} and {r['outputs']}")
    check_head_shapes(net, index, sess, f)
    return sess


def load(directory: str | Path, threads: int = 0) -> "DeployedNetwork":
    """Load and verify an export directory."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise RoutecError("routec.deploy needs onnxruntime, which is not installed",
                          hint="pip install onnxruntime") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InputError(f"threads must be a whole number >= 0 (0: ONNX Runtime's default), "
                         f"got {threads!r}")
    d = Path(directory)
    mpath = d / MANIFEST
    m = read_manifest(d)
    records, paths = check_node_records(m, d, mpath)
    topo = RoutingTree.from_dict(m["network"])
    convention = InputConvention.from_manifest(m.get("input"), topo.input_shape,
                                               topo.dynamic_kcpt, mpath)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    # one session per node, called in turn: idle pools that spin would fight the running
    # one for the cores (the onnx engine's sessions sleep too: routec.engine.onnx_export)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    segments = topo.segments(merge=False)
    calls = []
    for seg in segments:
        (node,) = seg.nodes
        r = records[node]
        sess = _node_session(ort, opts, r, paths[node], m["network"], node)
        calls.append(make_call(sess, seg, r["inputs"], r["outputs"]))
    reads: dict[int, set[int] | None] = {
        seg.index: {int(n[1:]) for n in records[seg.nodes[0]]["inputs"] if n.startswith("h")}
        for seg in segments}
    _, needs = level_needs(segments, reads)
    return DeployedNetwork(m, topo, SegmentRunner(topo, segments, calls, needs), convention)


class DeployedNetwork:
    """A loaded export: ``predict(raw images)`` → (class, exit index, MACs) per image;
    ``route(network inputs)`` → (logits, exit index, MACs)."""

    def __init__(self, manifest: dict[str, Any], topology: RoutingTree, runner: SegmentRunner,
                 convention: InputConvention) -> None:
        self.manifest = manifest
        self.topology = topology
        self.runner = runner
        self.convention = convention
        self.class_names: list[str] = list(manifest["class_names"])
        self.exit_names: list[str] = list(manifest["exits"])
        self.input_shape = tuple(topology.input_shape)

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Raw images as the network's input (the manifest's pixel decoding and
        normalisation), or an InputError saying what the network takes."""
        return self.convention.to_network(images)

    def route(self, x: np.ndarray, k_cpt: Any = None, policy: Any = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logits, exit index, MACs) of network inputs ``x`` (already preprocessed:
        see :meth:`preprocess`)."""
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise InputError(f"route() takes float32 network inputs, got "
                             f"{getattr(x, 'dtype', type(x).__name__)}; give raw images to "
                             f"predict(), or preprocess() them first")
        if not np.isfinite(x).all():
            raise InputError("network inputs hold NaN or infinite values")
        return self.runner.route(x, k_cpt, policy)

    def predict(self, images: np.ndarray, k_cpt: Any = None, batch: int = 500
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class index, exit index and MACs per raw image, in batches of ``batch``."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InputError(f"batch must be a whole number >= 1, got {batch!r}")
        conv = self.convention
        conv.check(images)  # all of them, before any work
        n = len(images)
        k = self.runner.kcpt(k_cpt, n)
        parts = [self.runner.route(conv.to_network(images[s:s + batch], checked=True),
                                   None if k is None else k[s:s + batch])
                 for s in range(0, n, batch)] or [
                     self.runner.route(conv.to_network(images, checked=True), k)]
        logits = np.concatenate([p[0] for p in parts])
        return (logits.argmax(axis=1), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]))
