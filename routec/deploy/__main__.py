"""``python -m routec.deploy DIR --images X.npy [--labels Y.npy]``: routed inference on
an exported network with numpy and ONNX Runtime only; prints JSON (accuracy when labels
are given, exit counts, mean MACs, predictions).

X.npy holds raw images: float32 N×C×H×W pixel values in [0, 1] as routec's dataset
loader gives them before normalisation, or (datasets stored as 8-bit values) uint8
N×C×H×W or N×H×W×C. The export's manifest says which; the runner decodes and
normalises them as training did. Faults are one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m routec.deploy", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="a directory written by `routec export`")
    ap.add_argument("--images", required=True,
                    help=".npy of raw images (see above; not normalised)")
    ap.add_argument("--labels", help=".npy of N integer class indices")
    ap.add_argument("--k-cpt", type=float, help="k_cpt (networks that read it)")
    ap.add_argument("--threads", type=int, default=0,
                    help="ONNX Runtime threads (0: its default)")
    ap.add_argument("--batch", type=int, default=500, help="images per run of the network (>= 1)")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the command prints, or a RoutecError."""
    import numpy as np

    from routec.deploy import load
    from routec.deploy.inputs import InputError, check_labels, load_array

    if args.batch < 1:
        raise InputError(f"--batch {args.batch}: a batch holds at least 1 image")
    if args.threads < 0:
        raise InputError(f"--threads {args.threads}: use 0 (ONNX Runtime's default) or more")
    net = load(args.dir, threads=args.threads)
    images = load_array(args.images, "images")
    net.convention.check(images)
    if len(images) == 0:
        raise InputError(f"{args.images}: holds no images")
    labels = None
    if args.labels:
        labels = check_labels(load_array(args.labels, "labels"), len(images),
                              len(net.class_names), args.labels)
    pred, exit_index, macs = net.predict(images, args.k_cpt, batch=args.batch)
    counts = np.bincount(exit_index, minlength=len(net.exit_names)).tolist()
    out: dict[str, Any] = {"examples": int(len(images)), "exit_names": net.exit_names,
                           "exit_counts": counts, "mean_macs": float(macs.mean()),
                           "predictions": pred.tolist()}
    if labels is not None:
        out["accuracy"] = float((pred == labels).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    from routec.errors import RoutecError

    args = parse(argv)
    try:
        out = run(args)
    except RoutecError as err:
        print(err.render(), file=sys.stderr)
        return 2
    out["torch_imported"] = "torch" in sys.modules
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
