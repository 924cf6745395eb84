"""ONNX export of segments and nodes, and ONNX Runtime sessions for them.

Every graph has a dynamic batch axis ``n``. Inputs are named ``x`` (the image, for
the stem), ``h0``.. (the levels of the pyramid the segment reads) and ``k_cpt``
(for a router that reads it); outputs ``o0``.. (the levels of its pyramid that later
nodes read; ``o2`` is level 2), ``scores`` (a router) or ``logits`` (a classifier).
The TorchScript-based exporter (``dynamo=False``) is used: it needs neither network
access nor onnxscript.
"""
from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from routec.tree import RoutingTree, Segment
from routec.engine import modules as M

OPSET = 17


def _example_inputs(net: Any, topo: RoutingTree, seg: Segment, n_in: int, batch: int = 2
                    ) -> tuple[Tensor, ...]:
    """Real inputs for a segment: the anchor pyramid of a small random batch."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, *topo.input_shape, generator=gen)
    x = x.to(next(iter(net.parameters()), x).device)  # a network on a GPU exports from there
    first = seg.transforms[0] if seg.transforms else seg.head
    with torch.no_grad():
        if topo.kinds[first] == "stem":
            args: tuple[Tensor, ...] = (x,)
        else:
            path = []
            i = topo.anchor(topo.parent[first])
            while i >= 0:
                if topo.kinds[i] in ("stem", "column"):
                    path.append(i)
                i = topo.parent[i]
            h: Any = x
            for i in reversed(path):
                h = getattr(net, topo.nodes[i])(h)
            args = tuple(t.clone() for t in h)
    if seg.end == "junction" and topo.dynamic_kcpt:
        args = args + (torch.full((batch,), 4e-9, device=x.device),)
    return args


def export_segment(net: Any, topo: RoutingTree, seg: Segment, n_in: int,
                   keep: tuple[int, ...] | None = None) -> tuple[bytes, list[str], list[str]]:
    """(ONNX model bytes, input names, output names) of one segment, eval mode; it
    outputs the pyramid levels in ``keep`` (all when None)."""
    mod = M.segment_module(net, topo, seg, n_in, keep).eval()
    was = net.training
    net.eval()
    args = _example_inputs(net, topo, seg, n_in)
    inputs = mod.input_names()
    n_levels = 0
    with torch.no_grad():
        outs = mod(*args)
    n_levels = len(outs) - (1 if seg.head >= 0 else 0)
    outputs = [f"o{i}" for i in (keep if keep is not None else range(n_levels))]
    if seg.head >= 0:
        outputs.append("scores" if seg.end == "junction" else "logits")
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(mod, args, buf, dynamo=False, opset_version=OPSET,
                          input_names=inputs, output_names=outputs,
                          dynamic_axes={name: {0: "n"} for name in inputs + outputs},
                          do_constant_folding=True)
    net.train(was)
    blob = buf.getvalue()
    import onnx

    graph = onnx.load_from_string(blob).graph
    inputs = [i.name for i in graph.input]  # the exporter drops inputs a graph never reads
    got = [o.name for o in graph.output]
    assert got == outputs, (got, outputs)
    return blob, inputs, outputs


def cuda_provider() -> bool:
    """Whether this onnxruntime runs sessions on a GPU (the onnxruntime-gpu build)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def session(blob: bytes | str, threads: int = 0, cuda: bool = False, spin: bool = True
            ) -> Any:
    """An ONNX Runtime session with ``threads`` intra-op threads (0: its default), on the
    CPU, or with ``cuda`` on ONNX Runtime's CUDA provider (its inputs and outputs still
    numpy arrays on the host, where routing happens). ``spin=False`` lets its idle
    worker threads sleep at once: see :func:`session_call`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    providers = (["CUDAExecutionProvider"] if cuda else []) + ["CPUExecutionProvider"]
    return ort.InferenceSession(blob, sess_options=opts, providers=providers)


def session_call(blob: bytes | str, seg: Segment, inputs: list[str], outputs: list[str],
                 threads: int = 0, cuda: bool = False) -> Any:
    """A SegmentRunner callable backed by one ONNX Runtime session.

    Every session owns its intra-op thread pool, and after a call its workers spin,
    waiting for more work, for a while. A routed network is several sessions called
    in turn with numpy routing in between: with more than one thread, the pools of
    the sessions just run spin against the one running now and the routing, on the
    same cores (at 2 threads on 2 cores routed inference ran 2-5x slower than with
    one, while a static chain, one session, did not). So the workers of every
    segment's session sleep at once, the static chain's too, so that both sides of
    a comparison run alike.
    """
    from routec.deploy.loader import make_call

    return make_call(session(blob, threads, cuda, spin=False), seg, inputs, outputs)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def uint8_decoding(data: str, pixels: str) -> dict[str, Any] | None:
    """How a dataset's 8-bit stored values become its float pixels, as a 256-entry table
    made by the dataset's own decoder (so the runner reproduces it bit for bit); None
    for a dataset that has no 8-bit form (synthetic, recoloured MNIST, a mix of sources).
    """
    import numpy as np

    from routec.data.folders import GAMMA
    from routec.data.named import NAMED, check_name
    from routec.data.preprocess import gamma_decode

    values = torch.arange(256, dtype=torch.uint8)
    kind = check_name(data)
    if kind == "folder":  # routec.data.folders.decode_image: v/255, then ^GAMMA in numpy
        unit = np.arange(256, dtype=np.float32) / 255.0
        decode, table = (("srgb", np.power(unit, GAMMA, dtype=np.float32)) if pixels == "linear"
                         else ("unit", unit))
    elif kind == "named" and NAMED[data].native:  # routec.data.derive._images: v/255
        decode, table = "unit", values.to(torch.float32).div_(255.0).numpy()
    elif kind == "named" and {m.source for m in NAMED[data].members} == {"cifar10"}:
        decode, table = (("unit", values.to(torch.float32).div_(255.0).numpy())
                         if pixels == "unit" else ("srgb", gamma_decode(values).numpy()))
    else:
        return None
    return {"decode": decode, "table": [float(v) for v in table]}


def input_record(shape: tuple[int, ...], k_cpt: bool, data: str | None = None,
                 info: Any = None) -> dict[str, Any]:
    """The manifest's ``input``: the network input's layout and how raw images become it.

    With the run's dataset (``data`` name and its ``DatasetInfo``): pixels in [0, 1] by
    ``info.pixels``, the 8-bit decoding where the dataset has one, and the per-channel
    normalisation the run trained with. Without it, inputs are taken as they are.
    """
    rec: dict[str, Any] = {"name": "x", "layout": "NCHW", "shape": list(shape),
                           "dtype": "float32", "k_cpt": k_cpt, "pixels": None, "range": None,
                           "normalization": None, "uint8": None}
    if info is None:
        return rec
    assert data is not None, "a DatasetInfo comes with its dataset's name"
    rec.update(pixels=info.pixels, range=[0.0, 1.0], uint8=uint8_decoding(data, info.pixels))
    if info.normalization is not None:
        mean, std = info.normalization
        rec["normalization"] = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    return rec


def export_network(net: Any, out_dir: str | Path, *, class_names: list[str] | None = None,
                   extra: dict[str, Any] | None = None, data: str | None = None,
                   info: Any = None) -> Path:
    """Write one ONNX file per node and manifest.json to ``out_dir``; returns the manifest.

    ``data`` and ``info`` (the dataset's name and ``DatasetInfo``) record how raw images
    become the network's input, so the runner can take raw images; without them the
    manifest says inputs are used as given.
    """
    from routec.deploy.manifest import FORMAT, MANIFEST, VERSION

    out = Path(out_dir)
    (out / "nodes").mkdir(parents=True, exist_ok=True)
    topo = RoutingTree.of(net)
    arity = M.pyramid_arity(net, topo)
    segments = topo.segments(merge=False)
    keep, _ = M.levels_kept(net, topo, segments, arity)
    nodes = []
    for seg in segments:
        (node,) = seg.nodes
        n_in = M.segment_inputs(topo, seg, arity)
        blob, inputs, outputs = export_segment(net, topo, seg, n_in, keep.get(seg.index))
        rel = f"nodes/{node:03d}_{topo.nodes[node]}.onnx"
        (out / rel).write_bytes(blob)
        nodes.append({"index": node, "id": topo.nodes[node], "kind": topo.kinds[node],
                      "macs": topo.macs[node], "file": rel, "sha256": sha256(blob),
                      "inputs": inputs, "outputs": outputs})
    manifest = {
        "format": FORMAT, "version": VERSION,
        "network": topo.as_dict(),
        "class_names": class_names or [str(c) for c in range(topo.classes)],
        "input": input_record(topo.input_shape, topo.dynamic_kcpt, data, info),
        "exits": [topo.nodes[i] for i in topo.leaves],
        "path_macs": list(topo.leaf_macs),
        "nodes": sorted(nodes, key=lambda d: d["index"]),
        "opset": OPSET,
        **(extra or {}),
    }
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path
