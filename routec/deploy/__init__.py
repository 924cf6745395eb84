"""Run an exported routed network with numpy and ONNX Runtime only (no torch).

    from routec import deploy
    net = deploy.load("exported/")          # manifest.json + nodes/*.onnx, verified
    logits, exit_index, macs = net.route(images)   # images: N×C×H×W float32, preprocessed

Write the directory with ``routec export RUN -o DIR``.
"""
from routec.deploy.loader import DeployedNetwork, ManifestError, load
from routec.deploy.runner import SegmentRunner
from routec.deploy.topology import Segment, Topology

__all__ = ["load", "DeployedNetwork", "ManifestError", "SegmentRunner", "Segment", "Topology"]
