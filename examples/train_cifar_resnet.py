"""Train a CIFAR ResNet on CIFAR-10 in plain PyTorch: the "model you already have".

This script does not import routec. It is the ordinary recipe a user would run
before asking routec to route their model: SGD with Nesterov momentum, a one-cycle
learning rate, weight decay, random crops (4-pixel padding) and mirror flips.

Input convention (the model expects it; record it when you route the model):
pixel values v/255 in RGB order, N×3×32×32 float32, then per channel
``(x - mean) / std`` with the training split's mean and std, printed and saved in
``<out>/<arch>_cifar10.json``.

Resumable: a checkpoint (``<out>/train_state.pt``) is written atomically every
epoch and every few minutes, so a killed run restarted with the same command
continues where it stopped, bit for bit. Outputs:

    <out>/<arch>_cifar10.pt      the trained state_dict (weights only)
    <out>/<arch>_cifar10.json    accuracy, budget, machine, input convention
    <out>/metrics.jsonl          one line per epoch

Run:  python examples/train_cifar_resnet.py --data $ROUTEC_DATA --out runs/backbone
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar_resnet import resnet20, resnet32  # noqa: E402

ARCHS = {"resnet20": resnet20, "resnet32": resnet32}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")


# ---------------------------------------------------------------- data

def _decode_jpeg(payload: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(payload)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _from_jpeg_members(items) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """items: (relative path 'train/cat/0001.jpg', bytes-getter) in any order."""
    split: dict[str, list[tuple[int, str, np.ndarray]]] = {"train": [], "test": []}
    for rel, get in items:
        parts = rel.split("/")
        if len(parts) < 3 or parts[-3] not in split or parts[-2] not in CLASSES:
            continue
        split[parts[-3]].append((CLASSES.index(parts[-2]), parts[-1], _decode_jpeg(get())))
    out = {}
    for name, rows in split.items():
        rows.sort(key=lambda r: (r[0], r[1]))
        out[name] = (np.stack([r[2] for r in rows]), np.array([r[0] for r in rows], np.int64))
    return out


def read_cifar10(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (N×32×32×3 uint8, N int64), 'test': ...} from any of the usual layouts."""
    batches = root / "cifar-10-batches-py"
    if batches.is_dir():
        import pickle

        def load(name: str) -> tuple[np.ndarray, np.ndarray]:
            with open(batches / name, "rb") as f:  # the official files: trusted numpy pickles
                d = pickle.load(f, encoding="bytes")
            return (d[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1),
                    np.asarray(d[b"labels"], np.int64))

        parts = [load(f"data_batch_{i}") for i in range(1, 6)]
        return {"train": (np.concatenate([p[0] for p in parts]),
                          np.concatenate([p[1] for p in parts])),
                "test": load("test_batch")}
    folder = root / "cifar-10-jpeg"
    if folder.is_dir():
        files = sorted(folder.rglob("*.jpg"))
        return _from_jpeg_members((p.relative_to(folder).as_posix(), p.read_bytes)
                                  for p in files)
    archive = root / "cifar-10-jpeg.tar.gz"
    if archive.is_file():
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg")]
            return _from_jpeg_members(
                (m.name, (lambda m=m: tar.extractfile(m).read())) for m in members)
    raise SystemExit(f"no CIFAR-10 under {root}: expected cifar-10-batches-py/, "
                     "cifar-10-jpeg/ or cifar-10-jpeg.tar.gz")


def cached_cifar10(root: Path, cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if cache.is_file():
        with np.load(cache) as z:
            return {s: (z[f"{s}_x"], z[f"{s}_y"]) for s in ("train", "test")}
    print(f"decoding CIFAR-10 from {root} (once; cached in {cache})", file=sys.stderr)
    data = read_cifar10(root)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **{f"{s}_{k}": v for s, (x, y) in data.items()
                     for k, v in (("x", x), ("y", y))})
    os.replace(tmp, cache)
    return data


def to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32×32 crops of the 4-pixel zero-padded image, and mirror flips (p = 0.5)."""
    n = len(x)
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=gen)
    dy = torch.randint(0, 9, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = (dy[:, None] + torch.arange(32)[None, :])  # n×32
    cols = (dx[:, None] + torch.arange(32)[None, :])
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_r = rows[:, None, :, None].expand(n, x.shape[1], 32, 40)
    out = padded.gather(2, idx_r)
    idx_c = cols[:, None, None, :].expand(n, x.shape[1], 32, 32)
    return out.gather(3, idx_c)


# ---------------------------------------------------------------- training

def save_atomic(obj: object, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / len(x)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=os.environ.get("ROUTEC_DATA"),
                    help="folder holding CIFAR-10 (default: $ROUTEC_DATA)")
    ap.add_argument("--out", type=Path, default=Path("runs/backbone"))
    ap.add_argument("--arch", choices=sorted(ARCHS), default="resnet20")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.2, help="peak of the one-cycle schedule")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None,
                    help="train on the first N training images only (smoke tests)")
    args = ap.parse_args(argv)
    if args.data is None:
        raise SystemExit("say where CIFAR-10 is: --data FOLDER or $ROUTEC_DATA")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = cached_cifar10(args.data, args.out / "cifar10_uint8.npz")
    train_x, train_y = to_tensor(data["train"][0]), torch.from_numpy(data["train"][1])
    test_x, test_y = to_tensor(data["test"][0]), torch.from_numpy(data["test"][1])
    if args.limit:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    mean = train_x.mean(dim=(0, 2, 3))
    std = train_x.std(dim=(0, 2, 3))
    train_x = (train_x - mean[:, None, None]) / std[:, None, None]
    test_x = (test_x - mean[:, None, None]) / std[:, None, None]

    torch.manual_seed(args.seed)
    model = ARCHS[args.arch](num_classes=10).to(memory_format=torch.channels_last)
    steps_per_epoch = len(train_x) // args.batch
    total = steps_per_epoch * args.epochs
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total,
                                                pct_start=0.15, div_factor=10,
                                                final_div_factor=100)
    gen = torch.Generator().manual_seed(args.seed + 1)
    state_path = args.out / "train_state.pt"
    step, seconds = 0, 0.0
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("data", "out", "threads")}
    if state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        if st["settings"] != json.loads(json.dumps(settings)):
            raise SystemExit(f"{state_path} was written with other settings: {st['settings']}")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        gen.set_state(st["generator"])
        step, seconds = st["step"], st["seconds"]
        print(f"resumed at step {step} of {total}", file=sys.stderr)
    metrics = args.out / "metrics.jsonl"
    if step == 0:
        metrics.unlink(missing_ok=True)

    def checkpoint() -> None:
        save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "generator": gen.get_state(),
                     "step": step, "seconds": seconds, "settings": settings}, state_path)

    last_save = time.monotonic()
    while step < total:
        epoch, pos = divmod(step, steps_per_epoch)
        # the epoch's order is a pure function of (seed, epoch): a resume mid-epoch redraws it
        order = torch.randperm(len(train_x),
                               generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        t0 = time.perf_counter()
        for b in range(pos, steps_per_epoch):
            idx = order[b * args.batch:(b + 1) * args.batch]
            x = augment(train_x[idx], gen).contiguous(memory_format=torch.channels_last)
            y = train_y[idx]
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += float(loss.detach()) * len(y)
            correct += int((out.argmax(1) == y).sum())
            seen += len(y)
            if time.monotonic() - last_save > 300:
                seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint()
                last_save = time.monotonic()
            if b % 50 == 0:
                print(f"epoch {epoch + 1}/{args.epochs} step {b}/{steps_per_epoch} "
                      f"loss {loss_sum / seen:.3f}", file=sys.stderr, flush=True)
        seconds += time.perf_counter() - t0
        test_acc = accuracy(model, test_x, test_y)
        line = {"epoch": epoch + 1, "step": step, "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1), "test_accuracy": test_acc,
                "seconds": round(seconds, 1)}
        with metrics.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), file=sys.stderr, flush=True)
        checkpoint()
        last_save = time.monotonic()

    model = model.to(memory_format=torch.contiguous_format)
    weights = args.out / f"{args.arch}_cifar10.pt"
    save_atomic({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    summary = {
        "arch": args.arch, "factory": f"cifar_resnet:{args.arch}",
        "test_accuracy": accuracy(model, test_x, test_y), "epochs": args.epochs,
        "batch": args.batch, "train_images": len(train_x), "train_seconds": round(seconds, 1),
        "threads": args.threads, "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, "settings": settings,
        "input": {"pixels": "v/255, RGB, N×3×32×32", "mean": mean.tolist(),
                  "std": std.tolist()},
        "weights": weights.name,
    }
    (args.out / f"{args.arch}_cifar10.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
