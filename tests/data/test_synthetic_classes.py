"""Every class of the built-in synthetic set can be told apart from every other one."""
from __future__ import annotations

import torch

from routec.data.synthetic import CLASSES, synthetic


def test_the_half_classes_are_drawn_in_the_brighter_colour() -> None:
    """'top' must not be 'bottom' with its two colours swapped: the drawn half is the
    brighter one, so comparing the halves' brightness names the class."""
    s = synthetic(seed=3, n_train=2000, n_val=10, n_test=10).train
    luma = s.images.mean(dim=1)  # N×H×W
    top, bottom = luma[:, :12].mean(dim=(1, 2)), luma[:, 20:].mean(dim=(1, 2))
    left, right = luma[:, :, :12].mean(dim=(1, 2)), luma[:, :, 20:].mean(dim=(1, 2))
    name = dict(zip(CLASSES, range(len(CLASSES))))
    for cls, brighter, darker in (("top", top, bottom), ("bottom", bottom, top),
                                  ("left", left, right), ("right", right, left)):
        rows = s.labels == name[cls]
        assert rows.sum() > 100
        assert float((brighter[rows] > darker[rows]).float().mean()) > 0.99, cls
