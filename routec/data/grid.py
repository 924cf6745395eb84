"""A picture of labelled samples (the paper's Fig. 4), for eyeballing data and augmentation.

Uses matplotlib's Agg canvas directly, so no global backend is switched and it
works without a display.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from routec.data.preprocess import gamma_encode
from routec.data.splits import MNIST_ORIGIN
from routec.errors import DataError

_CELL_INCHES = 1.1
_DPI = 100


def save_grid(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    out: Path,
    origin: torch.Tensor | None = None,
    title: str | None = None,
    *,
    linear: bool = True,
    digits: bool = True,
) -> Path:
    """Write a PNG grid of ``images`` (linear light, or display values when not ``linear``)
    with their class names above them; one-channel images are drawn in grey.

    With ``digits``, origin-0 examples (MNIST) are captioned in blue, natural images
    in black, so the mix is visible at a glance.
    """
    n = len(images)
    if n == 0:
        raise DataError("nothing to draw: the selection is empty")
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    height = rows * _CELL_INCHES + (0.4 if title else 0.0)
    fig = Figure(figsize=(cols * _CELL_INCHES, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    pixels = images.detach().float().cpu()
    shown = (gamma_encode(pixels) if linear else pixels.clamp(0.0, 1.0)).permute(0, 2, 3, 1).numpy()
    gray = shown.shape[-1] == 1
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        if gray:
            ax.imshow(shown[i, :, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(shown[i], interpolation="nearest")
        ax.set_axis_off()
        digit = digits and origin is not None and int(origin[i]) == MNIST_ORIGIN
        ax.set_title(classes[int(labels[i])], fontsize=7, color="tab:blue" if digit else "black", pad=2)
    if title:
        fig.suptitle(title, fontsize=9)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png")
    except OSError as err:
        raise DataError(f"{out}: cannot write picture ({err.strerror or err})") from err
    return out
