"""``routec data list`` and ``routec data show``: what data there is and what it looks like."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from routec.data.root import CACHE_ENV, DATA_ENV, resolve_cache_dir, resolve_data_root
from routec.errors import DataError
from routec.flags import number

# The parser is built on every command, so this module imports no torch, numpy
# or PIL at load time; the handlers import what they use.
SPLIT_NAMES = ("train", "val", "test")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root", metavar="DIR",
        help=f"folder holding the datasets (default: ${DATA_ENV} or ~/.local/share/routec/datasets)",
    )
    parser.add_argument(
        "--cache-dir", metavar="DIR", help=f"decoded-data cache (default: ${CACHE_ENV} or ~/.cache/routec)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation hold-out and MNIST colours")


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``data list`` and ``data show`` on the top-level parser."""
    data = subparsers.add_parser(
        "data", help="list datasets and draw samples", description="List the datasets and draw samples of them."
    )
    sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    lst = sub.add_parser("list", help="classes and per-split class counts of every dataset")
    lst.add_argument("names", nargs="*", metavar="NAME",
                     help="only these datasets or folders of class folders (default: every named dataset)")
    _common(lst)
    lst.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="draw a grid of samples with their labels")
    show.add_argument("name", help="a dataset name (see 'routec data list') or a folder of class folders")
    show.add_argument("--out", required=True, type=Path, help="PNG file to write")
    show.add_argument("--split", choices=SPLIT_NAMES, default="train")
    show.add_argument("--augment", action="store_true", help="apply training augmentation first")
    show.add_argument("--n", type=number(int, at_least=1, at_most=1024), default=64,
                      help="number of samples (default 64, at most 1024)")
    show.add_argument("--download", action="store_true", help="fetch missing canonical files (needs internet)")
    _common(show)
    show.set_defaults(func=cmd_show)


def _where(flag: str | None, env: str, resolved: Path) -> str:
    origin = "flag" if flag else (env if os.environ.get(env) else "default")
    return f"{resolved} ({origin})"


def cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from routec.data.load import dataset_summary
    from routec.data.named import available_datasets

    out = Console(highlight=False, soft_wrap=True)
    root, cache_dir = resolve_data_root(args.data_root), resolve_cache_dir(args.cache_dir)
    out.print(f"data root: {_where(args.data_root, DATA_ENV, root)}")
    out.print(f"cache:     {_where(args.cache_dir, CACHE_ENV, cache_dir)}")
    for name in args.names or available_datasets():
        try:
            summary = dataset_summary(name, root, cache_dir, args.seed)
        except DataError as err:
            out.print(f"\n[bold]{name}[/bold]: unavailable — {err.message}")
            continue
        out.print(f"\n[bold]{name}[/bold] — {summary.source}")
        table = Table(show_footer=True)
        table.add_column("class", footer="total")
        for split in SPLIT_NAMES:
            table.add_column(split, justify="right", footer=str(sum(summary.counts[split])))
        for i, cls in enumerate(summary.classes):
            table.add_row(cls, *(str(summary.counts[s][i]) for s in SPLIT_NAMES))
        out.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import torch

    from routec.data.augmentation import Augmenter
    from routec.data.grid import save_grid
    from routec.data.load import load_dataset

    if args.n < 1:
        raise DataError(f"--n must be at least 1, got {args.n}")
    data = load_dataset(args.name, args.data_root, args.cache_dir, args.seed, download=args.download)
    split = data.split(args.split)
    gen = torch.Generator()
    gen.manual_seed(args.seed)
    idx = torch.randperm(len(split), generator=gen)[: args.n]
    images, origin = split.images[idx], split.origin[idx]
    if args.augment:
        _, height, width = data.info.shape
        images = Augmenter.for_images(args.seed, height, width, data.info.shift, data.info.flip)(images, origin)
    title = f"{args.name} / {args.split}{' (augmented)' if args.augment else ''}"
    save_grid(images, split.labels[idx], data.classes, args.out, origin, title,
              linear=data.info.pixels == "linear")
    print(f"data: {args.name} — {data.info.source}")
    print(f"wrote {args.out}: {len(idx)} samples of {title}")
    return 0
