"""Where data files live and where decoded caches go.

Both can be set per command (``--data-root`` / ``--cache-dir``) or once per shell
(``ROUTEC_DATA`` / ``ROUTEC_CACHE``); the explicit argument always wins so a
command line can be read without knowing the environment.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "ROUTEC_DATA"
CACHE_ENV = "ROUTEC_CACHE"


def default_data_root() -> Path:
    """Used when neither flag nor variable is set; also where ``--download`` puts files."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "routec" / "datasets"


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "routec"


def _resolve(given: str | os.PathLike[str] | None, env: str, default: Path) -> Path:
    """The explicit argument, else the environment variable, else the default."""
    if given is not None and str(given) != "":
        return Path(given).expanduser()
    value = os.environ.get(env)
    return Path(value).expanduser() if value else default


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root`` if given, else ``$ROUTEC_DATA``, else :func:`default_data_root`."""
    return _resolve(root, DATA_ENV, default_data_root())


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` if given, else ``$ROUTEC_CACHE``, else ``~/.cache/routec``."""
    return _resolve(cache_dir, CACHE_ENV, default_cache_dir())
