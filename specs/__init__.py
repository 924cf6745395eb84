"""Bundled .route specs, shipped inside the wheel as ``routec.specs``.

:func:`names` lists them without parsing anything, so every command's ``--help``
can name them at no cost (:func:`routec.parse.bundled_specs` reads their text).
"""
from __future__ import annotations

from importlib import resources


def names() -> list[str]:
    """The bundled specs' names (``paper_chain`` for ``paper_chain.route``), sorted."""
    return sorted(entry.name.removesuffix(".route")
                  for entry in resources.files(__name__).iterdir()
                  if entry.name.endswith(".route"))
