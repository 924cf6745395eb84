"""Augmentation against a slow per-image reference, plus its statistics and seeding."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from routec.data import augmentation as aug
from routec.data.augmentation import Augmenter, AugmentParams
from routec.data.splits import CIFAR_ORIGIN, MNIST_ORIGIN


def _reference(img: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """One image, by slicing: flip, then move content dy down / dx right, fill with the mean."""
    c, h, w = img.shape
    src = img.flip(-1) if flip else img
    out = img.mean(dim=(1, 2), keepdim=True).expand(c, h, w).clone()
    ys, yd = (0, dy) if dy >= 0 else (-dy, 0)
    xs, xd = (0, dx) if dx >= 0 else (-dx, 0)
    hh, ww = h - abs(dy), w - abs(dx)
    if hh > 0 and ww > 0:
        out[:, yd : yd + hh, xd : xd + ww] = src[:, ys : ys + hh, xs : xs + ww]
    return out


def _batch(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g)
    origin = (torch.arange(n) % 2).to(torch.uint8)
    return images, origin


def test_matches_reference_for_drawn_params() -> None:
    images, origin = _batch(200)
    params = aug.draw_params(origin, torch.Generator().manual_seed(7))
    got = aug.apply(images, params)
    for i in range(len(images)):
        want = _reference(images[i], int(params.dy[i]), int(params.dx[i]), bool(params.flip[i]))
        torch.testing.assert_close(got[i], want, rtol=0, atol=1e-7)


@pytest.mark.parametrize("dy,dx,flip", [(4, -4, False), (-4, 4, True), (0, 0, True), (3, 0, False), (0, -2, True)])
def test_extreme_and_simple_params(dy: int, dx: int, flip: bool) -> None:
    images, _ = _batch(3)
    params = AugmentParams(torch.full((3,), dy), torch.full((3,), dx), torch.full((3,), flip))
    got = aug.apply(images, params)
    for i in range(3):
        torch.testing.assert_close(got[i], _reference(images[i], dy, dx, flip), rtol=0, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12), st.integers(1, 12), st.integers(-6, 6), st.integers(-6, 6), st.booleans(), st.integers(0, 99)
)
def test_any_size_and_shift_matches_reference(h: int, w: int, dy: int, dx: int, flip: bool, seed: int) -> None:
    img = torch.rand(1, 2, h, w, generator=torch.Generator().manual_seed(seed))
    params = AugmentParams(torch.tensor([dy]), torch.tensor([dx]), torch.tensor([flip]))
    torch.testing.assert_close(aug.apply(img, params)[0], _reference(img[0], dy, dx, flip), rtol=0, atol=1e-7)


def test_single_pixel_moves_as_documented() -> None:
    img = torch.zeros(1, 1, 32, 32)
    img[0, 0, 10, 20] = 1.0
    params = AugmentParams(torch.tensor([2]), torch.tensor([-3]), torch.tensor([False]))
    out = aug.apply(img, params)
    assert out[0, 0, 12, 17] == 1.0
    fill = 1.0 / 1024  # the mean of the unshifted image
    assert torch.allclose(out[0, 0, :2, :], torch.full((2, 32), fill))  # two rows blanked at the top
    assert torch.allclose(out[0, 0, :, 29:], torch.full((32, 3), fill))  # three columns at the right


def test_shift_distribution_covers_range() -> None:
    origin = torch.zeros(5000, dtype=torch.uint8)
    p = aug.draw_params(origin, torch.Generator().manual_seed(0))
    for d in (p.dy, p.dx):
        assert d.min() == -4 and d.max() == 4
        counts = torch.bincount(d + 4, minlength=9).float()
        assert counts.min() > 5000 / 9 * 0.8  # every offset roughly equally likely
    assert not torch.equal(p.dy, p.dx)  # the axes are independent draws


def test_flips_only_cifar_origin() -> None:
    n = 4000
    origin = torch.where(torch.arange(n) < n // 2, MNIST_ORIGIN, CIFAR_ORIGIN).to(torch.uint8)
    p = aug.draw_params(origin, torch.Generator().manual_seed(1))
    assert not p.flip[: n // 2].any()
    share = p.flip[n // 2 :].float().mean().item()
    assert 0.45 < share < 0.55
    # And in pixels: a digit image never comes out mirrored.
    img = torch.zeros(n, 1, 32, 32)
    img[:, :, :, :8] = 1.0  # bright left band
    out = aug.apply(img, AugmentParams(torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long), p.flip))
    left_bright = out[:, 0, :, :8].mean(dim=(1, 2)) == 1.0
    assert torch.equal(left_bright, ~p.flip)


def test_seeded_determinism() -> None:
    images, origin = _batch()
    a = Augmenter(seed=3)(images, origin)
    b = Augmenter(seed=3)(images, origin)
    c = Augmenter(seed=4)(images, origin)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    augmenter = Augmenter(seed=3)
    state = augmenter.state()
    first = augmenter(images, origin)
    augmenter.restore(state)
    assert torch.equal(augmenter(images, origin), first)


def test_input_untouched_and_dtype_kept() -> None:
    images, origin = _batch()
    before = images.clone()
    out = Augmenter()(images, origin)
    assert torch.equal(images, before)
    assert out.dtype == images.dtype and out.shape == images.shape
