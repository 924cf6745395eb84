"""The run configuration: defaults from the paper, overridable by file and flags.

A run's effective config is saved beside its checkpoints, so every result can be
traced to the exact settings that produced it.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from routec.errors import RunError

Strategy = Literal["actor", "critic", "static", "multi-exit"]
# docs/design.md: per-example k_cpt for dynamic training is drawn from this grid (×1e-9)
K_CPT_GRID = (0.0, 1e-9, 2e-9, 4e-9, 8e-9, 16e-9, 32e-9, 64e-9)
# --cost latency: k_cpt is cost per millisecond of measured time per example (the cost
# table's seconds × 1e3). On the CPU of docs/benchmarks.md 1 ms of paper_chain is about
# 1e7 MACs, so this grid prices time about as the MAC grid prices MACs.
LATENCY_K_CPT_GRID = (0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)
# Routers that read k_cpt see it × KCPT_SCALE (1e7, runtime/layers.py): the MAC grid
# reaches them as 0..0.64. A per-millisecond k_cpt is multiplied by this first, so the
# routers of a latency-priced network see k_cpt per ms itself (the same 0..0.64).
LATENCY_KCPT_INPUT = 1e-7


# Where routec's defaults depart from the paper's recipe (§5: images as they are, SGD
# at lr 0.1 with momentum 0.9 from the first step, no clipping). That recipe suits the
# paper's batch-normalised columns. A plain conv network without batch-norm, fed
# images whose channels all have a mean near 0.5, gets a gradient spike in its first
# dozens of steps that leaves most first-layer ReLUs dead, and sits at chance
# (docs/training.md). By default routec standardises each input channel with the
# training split's statistics and clips the gradient's norm to 1; a linear lr warm-up
# is available but did not help on its own. `preset = "paper"` restores the paper's
# settings exactly; explicit values override either preset.
PRESETS: dict[str, dict[str, float | int | bool]] = {
    "default": {"normalize": True, "warmup": 0, "clip_grad_norm": 1.0},
    "paper": {"normalize": False, "warmup": 0, "clip_grad_norm": 0.0},
}


class ModelSource(BaseModel):
    """How to rebuild a supplied model (``model NAME`` in the spec) in any later command:
    its factory, keyword arguments, and the weights it started from (path and SHA-256,
    for the record; the run's checkpoints carry the weights themselves)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str | None = Field(None, description="MODULE:CALLABLE; None: a factory "
                               "registered with routec.register_model")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: str | None = None
    weights_sha256: str | None = None


class RunConfig(BaseModel):
    # every number finite: `lr = inf` (a flag or a TOML file) is refused here, not by a
    # run that goes non-finite at its first step
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    spec: str
    strategy: Strategy = "actor"
    data: str = "synthetic"
    data_root: str | None = None
    cache_dir: str | None = None
    seed: int = Field(0, ge=0, le=2**63 - 1, description="torch seeds are 64-bit")
    iterations: int = Field(80_000, ge=1)
    batch: int = Field(128, ge=2)
    lr: float = Field(0.1, gt=0)
    lr_halflife: float = Field(10_000, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    tau: float | None = Field(None, gt=0, description="default: actor 1.0, critic 0.1")
    tau_halflife: float = Field(20_000, gt=0)
    k_cpt: float | Literal["dynamic"] = 0.0
    k_cpt_grid: tuple[float, ...] = Field(K_CPT_GRID, description="dynamic k_cpt draws "
                                          "(--cost latency: LATENCY_K_CPT_GRID)")
    k_cpt_conditioning: Literal["paper", "every-layer"] = Field(
        "paper", description="how routers of a dynamic-k_cpt network read k_cpt: paper "
                             "(k_cpt × 1e7, one input at the first layer) or every-layer "
                             "(log1p(k_cpt / the grid's smallest positive k_cpt) beside every "
                             "layer's input)")
    cost: Literal["macs", "latency"] = Field(
        "macs", description="what c_cpt prices: MACs (k_cpt per MAC) or the measured seconds "
                            "per example of a cost table (k_cpt per millisecond)")
    cost_table: str | None = Field(None, description="--cost latency: a table written by "
                                   "`routec profile` (saved in the run as cost_table.json)")
    k_dec: float = Field(0.01, ge=0)
    k_ure: float = Field(1e-3, ge=0)
    k_l2: float = Field(1e-4, ge=0)
    epsilon: float = Field(1e-6, ge=0, lt=1)
    talr: bool = True
    preset: Literal["default", "paper"] = Field(
        "default", description="default: gradient clipping (below); paper: the paper's "
                               "exact recipe (no warm-up, no clipping)")
    warmup: int | None = Field(None, ge=0, description="iterations of linear lr warm-up "
                               "from 0 (both presets: 0)")
    clip_grad_norm: float | None = Field(None, ge=0, description="clip the gradient's global "
                                         "norm (after TALR) to this; 0: never (default "
                                         "preset 1.0, paper 0)")
    regularise_dhat: bool = Field(False, description="actor: differentiate c_mod's (k_L2, "
                                  "k_dec) weighting by the reach probabilities, the paper's "
                                  "'regularising d̂' ablation (§4.4, §5.2); by default it is "
                                  "held constant")
    utility: Literal["pragmatic", "optimistic"] = "pragmatic"
    critic_error: Literal["crossentropy", "classification"] = "crossentropy"
    critic_mode: Literal["closed", "sampled"] = "closed"
    static_columns: int | None = Field(None, ge=1)
    augment: bool = True
    # data: image folders (docs/data.md, "Your own data"); None = the dataset's default
    resize: bool = Field(False, description="scale every folder image to the spec's input")
    val_fraction: float | None = Field(None, gt=0, lt=1, description="folder hold-out (0.1)")
    test_fraction: float | None = Field(None, gt=0, lt=1, description="folder hold-out (0.1)")
    pixels: Literal["linear", "unit"] | None = Field(None, description="folders: linear light "
                                                     "(default) or v/255")
    normalize: bool | None = Field(None, description="standardise channels with train "
                                   "statistics (default preset: on; paper: off)")
    shift: float | None = Field(None, ge=0, lt=1, description="augmentation: largest shift as "
                                "a fraction of the image side (0.125)")
    flip: bool | None = Field(None, description="augmentation: mirror natural images")
    log_every: int = Field(100, ge=1)
    eval_every: int = Field(1_000, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    checkpoint_seconds: float = Field(60.0, ge=0, description="also checkpoint after this "
                                      "many seconds of training since the last one; 0: never")
    val_examples: int | None = Field(None, ge=1, description="cap on validation examples")
    tensorboard: bool = Field(True, description="write TensorBoard event files beside "
                              "metrics.jsonl (docs/training.md, \"Watching training\")")
    device: str = "cpu"
    compile: bool = Field(False, description="compile the training step (forward, loss and "
                          "backward; TALR, clipping and SGD) with torch.compile (inductor; a "
                          "C++ compiler on a CPU): fewer, fused kernels where small heads "
                          "make an eager step mostly per-op cost")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="the forward pass under autocast at bf16 or fp16 on the device "
                            "(fp16 with a gradient scaler); fp32: no autocast")
    # a model the user already has (docs/backbones.md): its source, and what trains
    models: dict[str, ModelSource] = Field(default_factory=dict)
    freeze: str = Field("none", description="supplied models' pieces kept as they are: "
                        "none, all, or a column name (that column and those before it)")
    distill: float = Field(0.0, ge=0, description="weight of a loss pulling every exit "
                           "towards the supplied model's own head (KL divergence)")

    @field_validator("data")
    @classmethod
    def _data(cls, v: str) -> str:
        """A folder of images is stored as an absolute path, so eval works from anywhere."""
        from routec.data.named import NAMED, SYNTHETIC

        if v in NAMED or v in (SYNTHETIC, "auto"):
            return v
        p = Path(v).expanduser()
        return str(p.resolve()) if p.is_dir() else v

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: object) -> object:
        """Fill the preset's values for the fields left unset (None)."""
        if isinstance(data, dict):
            preset = PRESETS.get(data.get("preset") or "default")
            if preset is not None:
                data = {**data, **{k: v for k, v in preset.items() if data.get(k) is None}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _latency_grid(cls, data: object) -> object:
        """With --cost latency, dynamic k_cpt is drawn from the per-millisecond grid."""
        if isinstance(data, dict) and data.get("cost") == "latency" \
                and data.get("k_cpt_grid") is None:
            data = {**data, "k_cpt_grid": LATENCY_K_CPT_GRID}
        return data

    @model_validator(mode="after")
    def _cost_table(self) -> "RunConfig":
        if self.cost == "latency" and not self.cost_table:
            raise ValueError("--cost latency needs --cost-table FILE (written by `routec "
                             "profile SPEC -o FILE`)")
        if self.cost == "macs" and self.cost_table:
            raise ValueError("--cost-table applies with --cost latency")
        return self

    @model_validator(mode="after")
    def _conditioning(self) -> "RunConfig":
        if self.k_cpt_conditioning != "paper":
            if not self.dynamic:
                raise ValueError(f"--k-cpt-conditioning {self.k_cpt_conditioning} applies "
                                 "with --k-cpt dynamic (routers read k_cpt only then)")
            if not any(k > 0 for k in self.k_cpt_grid):
                raise ValueError("--k-cpt-conditioning every-layer needs a positive value "
                                 "in k_cpt_grid (its smallest is the unit of log1p(k/unit))")
        return self

    @field_validator("cost_table")
    @classmethod
    def _cost_table_path(cls, v: str | None) -> str | None:
        """Stored as an absolute path, so a resumed run finds it from anywhere."""
        if v is None:
            return v
        p = Path(v).expanduser()
        return str(p.resolve()) if p.exists() else v

    @field_validator("k_cpt")
    @classmethod
    def _k_cpt(cls, v: float | str) -> float | str:
        if isinstance(v, float) and v < 0:
            raise ValueError("k_cpt must be ≥ 0")
        return v

    @field_validator("regularise_dhat")
    @classmethod
    def _regularise_dhat(cls, v: bool, info) -> bool:  # noqa: ANN001 - pydantic's info
        if v and info.data.get("strategy") != "actor":
            raise ValueError("regularise_dhat applies to --strategy actor")
        return v

    @property
    def effective_tau(self) -> float:
        if self.tau is not None:
            return self.tau
        return 0.1 if self.strategy == "critic" else 1.0

    @property
    def dynamic(self) -> bool:
        return self.k_cpt == "dynamic"

    def router_k_cpt(self, k: float) -> float:
        """What routers reading k_cpt are fed for a k_cpt in this run's unit."""
        return k * LATENCY_KCPT_INPUT if self.cost == "latency" else k

    @property
    def router_kcpt_unit(self) -> float | None:
        """The unit of every-layer conditioning, baked into the network: the grid's
        smallest positive k_cpt as routers are fed it (1e-9 for both bundled grids);
        None for the paper's form, so such networks are generated as before."""
        if self.k_cpt_conditioning == "paper" or not self.dynamic:
            return None
        return self.router_k_cpt(min(k for k in self.k_cpt_grid if k > 0))


def load_config_file(path: str | Path) -> dict:
    """Settings from a TOML file (a table of RunConfig fields)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise RunError(f"{p}: config file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise RunError(f"{p}: not valid TOML ({err})") from None


def saved_settings_upgraded(values: dict) -> dict:
    """Settings saved by a run (config.json, a checkpoint): a run saved before presets
    existed was trained with the paper's recipe, so it reads as ``preset = "paper"``."""
    if "preset" not in values:
        return {**values, "preset": "paper"}
    return dict(values)


def saved_config(values: dict) -> RunConfig:
    """The RunConfig of saved settings (see :func:`saved_settings_upgraded`).

    The models a run routes (``models``) are noted as sources, so a later graph of its
    spec can build them; nothing is imported until one is needed."""
    cfg = RunConfig(**saved_settings_upgraded(values))
    if cfg.models:
        from routec.backbone.registry import note_source

        for name, src in cfg.models.items():
            note_source(name, src.target, src.kwargs)
    return cfg


def make_config(values: dict) -> RunConfig:
    """Validate settings; errors name the field and what was wrong."""
    try:
        return RunConfig(**values)
    except ValidationError as err:
        lines = [(f"{'.'.join(str(x) for x in e['loc'])}: " if e["loc"] else "")
                 + e["msg"].removeprefix("Value error, ") for e in err.errors()]
        raise RunError("bad run configuration: " + "; ".join(lines)) from None


# Settings a resumed run may change: the budget, where the data lives (a run may move
# to another machine), and whether TensorBoard is written (it changes no result).
# Anything else would make the result a mix of two runs.
RESUME_MAY_CHANGE = frozenset({"iterations", "data_root", "cache_dir", "tensorboard"})
# (the weights a supplied model started from are in the checkpoint, so a resume needs
# neither the file nor its path: only the factory, which is compared)


def changed_settings(saved: RunConfig, given: RunConfig) -> list[tuple[str, object, object]]:
    """(field, saved value, given value) for every setting a resume may not change."""
    a, b = saved.model_dump(), given.model_dump()
    return [(k, a[k], b.get(k)) for k in a if k not in RESUME_MAY_CHANGE and a[k] != b.get(k)]


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")
