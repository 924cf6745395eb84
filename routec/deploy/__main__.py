"""``python -m routec.deploy DIR --images X.npy [--labels Y.npy]``: routed inference on
an exported network with numpy and ONNX Runtime only; prints JSON (accuracy when labels
are given, exit counts, mean MACs)."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from routec.deploy import load
    from routec.errors import RoutecError

    ap = argparse.ArgumentParser(prog="python -m routec.deploy", description=__doc__)
    ap.add_argument("dir", help="a directory written by `routec export`")
    ap.add_argument("--images", required=True,
                    help=".npy of N×C×H×W float32 images, preprocessed as in training")
    ap.add_argument("--labels", help=".npy of N class indices")
    ap.add_argument("--k-cpt", type=float, help="k_cpt (networks that read it)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args(argv)
    try:
        net = load(args.dir, threads=args.threads)
        images = np.load(args.images)
        pred, exit_index, macs = net.predict(images, args.k_cpt, batch=args.batch)
    except RoutecError as err:
        print(err.render(), file=sys.stderr)
        return 2
    counts = np.bincount(exit_index, minlength=len(net.exit_names)).tolist()
    out = {"examples": int(len(images)), "exit_names": net.exit_names, "exit_counts": counts,
           "mean_macs": float(macs.mean()) if len(macs) else 0.0,
           "predictions": pred.tolist()}
    if args.labels:
        labels = np.load(args.labels)
        out["accuracy"] = float((pred == labels).mean()) if len(labels) else 0.0
    out["torch_imported"] = "torch" in sys.modules
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
