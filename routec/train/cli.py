"""``routec train`` and ``routec eval``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, get_args

from routec.backbone.flags import add_model_flags, model_sources
from routec.errors import RunError
from routec.train.config import (RunConfig, Strategy, load_config_file, make_config,
                                 saved_settings_upgraded)
from routec.train.run_dir import RunDir

# flag name -> RunConfig field; every flag defaults to None so that only flags the
# user typed override the config file, which overrides the defaults.
FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--strategy": ("strategy", {"choices": list(get_args(Strategy))}),
    "--data": ("data", {"help": "dataset: hybrid, cifar2, cifar5, cifar10, mnist, mnist28 "
                                "(1x28x28), synthetic, auto (hybrid if its files are found, "
                                "else synthetic), or a folder DIR/<class>/*.png"}),
    "--resize": ("resize", {"action": "store_const", "const": True,
                            "help": "image folders: scale every image to the spec's input"}),
    "--val-fraction": ("val_fraction", {"type": float, "help": "image folders: share of every "
                                        "class held out for validation (default 0.1)"}),
    "--test-fraction": ("test_fraction", {"type": float, "help": "image folders: share of every "
                                          "class held out for test (default 0.1)"}),
    "--pixels": ("pixels", {"choices": ["linear", "unit"], "help": "image folders and the "
                            "CIFAR sets: linear light (v/255)^2.2 as in the paper (default), or "
                            "unit: v/255, as most models trained elsewhere expect"}),
    "--normalize": ("normalize", {"action": "store_const", "const": True,
                                  "help": "standardise every channel with the training split's "
                                          "mean and standard deviation (the default preset "
                                          "does; --preset paper does not)"}),
    "--no-normalize": ("normalize", {"action": "store_const", "const": False,
                                     "help": "feed the images as they are"}),
    "--shift": ("shift", {"type": float, "help": "augmentation: largest shift as a fraction of "
                          "the image side (default 0.125: 4 px of 32)"}),
    "--no-flip": ("flip", {"action": "store_const", "const": False,
                           "help": "augmentation: never mirror images"}),
    "--data-root": ("data_root", {"help": "dataset folder (default: $ROUTEC_DATA)"}),
    "--cache-dir": ("cache_dir", {"help": "decoded-data cache (default: $ROUTEC_CACHE)"}),
    "--iterations": ("iterations", {"type": int}),
    "--batch": ("batch", {"type": int}),
    "--lr": ("lr", {"type": float}),
    "--lr-halflife": ("lr_halflife", {"type": float}),
    "--preset": ("preset", {"choices": ["default", "paper"],
                            "help": "default: standardised inputs and gradient clipping "
                                    "(--normalize --clip-grad-norm 1), so networks without "
                                    "batch-norm train too; paper: the paper's exact recipe "
                                    "(docs/training.md)"}),
    "--warmup": ("warmup", {"type": int, "help": "iterations of linear lr warm-up "
                                                 "(default 0)"}),
    "--clip-grad-norm": ("clip_grad_norm", {"type": float,
                                            "help": "clip the gradient's norm to this; 0: "
                                                    "never (default preset 1.0; paper 0)"}),
    "--momentum": ("momentum", {"type": float}),
    "--tau": ("tau", {"type": float, "help": "initial temperature (actor 1.0, critic 0.1)"}),
    "--tau-halflife": ("tau_halflife", {"type": float,
                                        "help": "iterations per halving of τ (default 2e4; "
                                                "the paper's text says 1e4)"}),
    "--k-cpt": ("k_cpt", {"help": "cost per MAC, e.g. 4e-9 (with --cost latency: per "
                                  "millisecond per example, e.g. 0.04), or 'dynamic' "
                                  "(per-example draw from the grid; routers read it)"}),
    "--k-cpt-conditioning": ("k_cpt_conditioning", {
        "choices": ["paper", "every-layer"],
        "help": "with --k-cpt dynamic, how routers read k_cpt: paper (default: k_cpt × 1e7, "
                "one input of the first layer) or every-layer (log1p(k_cpt / the grid's "
                "smallest positive value) beside every layer's input)"}),
    "--cost": ("cost", {"choices": ["macs", "latency"],
                        "help": "what k_cpt prices: MACs (default, the paper's) or the "
                                "measured time per example of --cost-table's nodes"}),
    "--cost-table": ("cost_table", {"metavar": "FILE",
                                    "help": "a cost table from `routec profile` (--cost "
                                            "latency); saved in the run directory"}),
    "--k-dec": ("k_dec", {"type": float}),
    "--k-ure": ("k_ure", {"type": float}),
    "--k-l2": ("k_l2", {"type": float}),
    "--epsilon": ("epsilon", {"type": float}),
    "--utility": ("utility", {"choices": ["pragmatic", "optimistic"]}),
    "--critic-error": ("critic_error", {"choices": ["crossentropy", "classification"]}),
    "--critic-mode": ("critic_mode", {"choices": ["closed", "sampled"]}),
    "--static-columns": ("static_columns", {"type": int,
                                            "help": "train the first N columns as a static "
                                                    "chain"}),
    "--seed": ("seed", {"type": int}),
    "--log-every": ("log_every", {"type": int}),
    "--eval-every": ("eval_every", {"type": int}),
    "--checkpoint-every": ("checkpoint_every", {"type": int}),
    "--checkpoint-seconds": ("checkpoint_seconds", {"type": float,
                                                    "help": "also checkpoint every this many "
                                                            "seconds (default 60; 0: never)"}),
    "--val-examples": ("val_examples", {"type": int}),
    "--tensorboard": ("tensorboard", {"action": "store_const", "const": True,
                                      "help": "write TensorBoard event files into the run "
                                              "directory (the default)"}),
    "--no-tensorboard": ("tensorboard", {"action": "store_const", "const": False,
                                         "help": "write no TensorBoard event files (a "
                                                 "resume may turn them on or off)"}),
    "--device": ("device", {}),
    "--compile": ("compile", {"action": "store_const", "const": True,
                              "help": "compile the training step (forward, loss and "
                                      "backward; TALR, clipping and SGD) with "
                                      "torch.compile (needs a C++ compiler on a CPU; "
                                      "compiling takes a minute before the first step)"}),
    "--precision": ("precision", {"choices": ["fp32", "bf16", "fp16"],
                                  "help": "forward pass precision: fp32 (default), bf16 or "
                                          "fp16 (autocast on the device; fp16 scales the "
                                          "loss)"}),
    "--freeze": ("freeze", {"metavar": "none|all|COLUMN",
                            "help": "supplied models: keep their pieces as trained, with "
                                    "batch-norm statistics kept and no gradients: none "
                                    "(default), all, or the pieces up to and including "
                                    "column COLUMN"}),
    "--distill": ("distill", {"type": float, "help": "weight of a KL loss pulling every exit "
                              "towards the supplied model's own head (default 0)"}),
}





def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a routed network",
                       description="Train SPEC with a strategy; logs, checkpoints and the "
                                   "effective config go to --out.")
    p.add_argument("spec", nargs="?",
                   help="a .route file or a bundled spec name (not needed with --resume)")
    p.add_argument("--config", help="a TOML file of run settings (flags override it)")
    p.add_argument("--out", help="run directory (default: runs/SPEC-STRATEGY)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its saved settings (only "
                        "--iterations and --[no-]tensorboard may change)")
    p.add_argument("--start-if-missing", action="store_true",
                   help="with --resume: when --out has no checkpoint yet, start the run "
                        "from iteration 0 (with its saved settings, if any)")
    p.add_argument("--no-talr", dest="talr", action="store_false", default=None,
                   help="turn off throughput-adjusted learning rates")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for flag, (_, kw) in FLAGS.items():
        p.add_argument(flag, default=None, **kw)
    add_model_flags(p)
    p.set_defaults(func=run_train)


def _resolve_data(name: str, root: str | None) -> str:
    """'auto': hybrid when its files are found, else synthetic, and say which."""
    if name != "auto":
        return name
    from routec.data import DataNotFound, dataset_summary

    try:
        dataset_summary("hybrid", root=root)
        chosen = "hybrid"
    except DataNotFound as err:
        print(f"note: {err.message}", file=sys.stderr)
        chosen = "synthetic"
    print(f"data: {chosen}", file=sys.stderr)
    return chosen


def config_from_args(args: argparse.Namespace, saved: dict[str, Any] | None = None
                     ) -> RunConfig:
    """Defaults < ``saved`` (a resumed run's settings) < --config file < typed flags."""
    values: dict[str, Any] = dict(saved or {})
    if args.config:
        values.update(load_config_file(args.config))
    if args.spec is not None:
        values["spec"] = args.spec
    elif "spec" not in values:
        raise RunError("routec train needs a SPEC (a .route file or a bundled spec name), "
                       "or --resume --out RUN to continue a run")
    for flag, (field, _) in FLAGS.items():
        v = getattr(args, flag.lstrip("-").replace("-", "_"))
        if v is not None:
            values[field] = v
    for field in ("talr", "augment"):
        if getattr(args, field) is not None:
            values[field] = getattr(args, field)
    sources = model_sources(args)
    if sources:
        values["models"] = {**values.get("models", {}), **sources}
    if "k_cpt" in values and values["k_cpt"] != "dynamic":
        try:
            values["k_cpt"] = float(values["k_cpt"])
        except (TypeError, ValueError):
            raise RunError(f"--k-cpt must be a number or 'dynamic', got {values['k_cpt']!r}") \
                from None
    data = values.get("data", "auto")
    if data == "auto":
        # Check every other setting before looking for data: finding out whether the
        # hybrid set is at hand may decode it (minutes, on first use), and a bad flag
        # must not wait for that.
        make_config({**values, "data": "synthetic"})
    values["data"] = _resolve_data(data, values.get("data_root"))
    return make_config(values)


def saved_settings(out: Path) -> dict[str, Any] | None:
    """The settings a run in ``out`` was started with: its checkpoint's, or (for a run
    stopped before its first checkpoint) its config.json; None when neither exists."""
    run = RunDir(out)
    if run.checkpoint.exists():
        return saved_settings_upgraded(run.state()["config"])
    if run.config_file.exists():
        try:
            return saved_settings_upgraded(json.loads(run.config_file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            raise RunError(f"{run.config_file}: unreadable run config ({err})") from None
    return None


def run_train(args: argparse.Namespace) -> int:
    from routec.train.lock import RunLock

    if args.resume and args.out and Path(args.out).is_dir() and \
            int(os.environ.get("RANK", "0")) == 0:
        with RunLock(Path(args.out)):  # a live writer is named before anything else is said
            return _run_train(args)
    return _run_train(args)


def _run_train(args: argparse.Namespace) -> int:
    from routec.train.loop import missing_checkpoint_message, train

    saved = None
    if args.resume:
        if not args.out:
            raise RunError("--resume needs --out RUN, the run directory to continue")
        saved = saved_settings(Path(args.out))
        if not RunDir(args.out).has_checkpoint and not args.start_if_missing:
            raise RunError(missing_checkpoint_message(Path(args.out)))
    elif args.start_if_missing:
        raise RunError("--start-if-missing only applies with --resume")
    cfg = config_from_args(args, saved)
    out = Path(args.out or f"runs/{Path(cfg.spec).stem}-{cfg.strategy}")
    result = train(cfg, out, resume=args.resume, progress=not args.no_progress,
                   start_if_missing=args.start_if_missing)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    val = result.val or {}
    print(f"done: {out} at iteration {result.iteration}; validation accuracy "
          f"{val.get('accuracy', float('nan')):.4f}, mean MACs {val.get('mean_macs', 0):,.0f}"
          + (f", mean measured time {val['mean_seconds'] * 1e3:.4g} ms per example (cost "
             "table)" if "mean_seconds" in val else ""))
    return 0
