"""A short trained run shared by the engine tests (trained once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny spec trained for a few dozen actor steps on the synthetic set."""
    from routec.train.config import make_config
    from routec.train.loop import train

    out = tmp_path_factory.mktemp("engine") / "tiny-actor"
    cfg = make_config({"spec": "tiny", "data": "synthetic", "k_cpt": 1e-7, "iterations": 40,
                       "batch": 64, "eval_every": 1000, "log_every": 20, "seed": 3})
    train(cfg, out, progress=False)
    return out


@pytest.fixture(scope="session")
def static_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two static prefixes of the tiny spec (1 and 3 columns), briefly trained."""
    from routec.train.config import make_config
    from routec.train.loop import train

    root = tmp_path_factory.mktemp("engine") / "tiny-static"
    for n in (1, 3):
        cfg = make_config({"spec": "tiny", "data": "synthetic", "strategy": "static",
                           "static_columns": n, "iterations": 30, "batch": 64,
                           "eval_every": 1000, "log_every": 15, "seed": 3})
        train(cfg, root / f"n{n}", progress=False)
    return root
