"""Run an exported routed network with numpy and ONNX Runtime only (no torch).

    from routec import deploy
    net = deploy.load("exported/")          # manifest.json + nodes/*.onnx, verified
    pred, exit_index, macs = net.predict(images)   # raw images, as the manifest's input says

``images`` are raw: float32 N×C×H×W pixel values in [0, 1] as routec's dataset loader
gives them before normalisation (or uint8 for datasets stored as 8-bit values); the
network's normalisation is applied by the runner. ``net.route(x)`` takes network inputs
already preprocessed (``net.preprocess(images)``). Write the directory with
``routec export RUN -o DIR``.
"""
from routec.deploy.inputs import InputConvention, InputError
from routec.deploy.loader import DeployedNetwork, load
from routec.deploy.manifest import ManifestError
from routec.deploy.runner import SegmentRunner
from routec.tree import RoutingTree, Segment

__all__ = ["load", "DeployedNetwork", "ManifestError", "InputError", "InputConvention",
           "SegmentRunner", "Segment", "RoutingTree"]
