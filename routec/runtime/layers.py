"""The building blocks generated networks are made of.

Every block maps a *pyramid* (a tuple of N×C×H×W tensors, finest level first) to
a pyramid, so columns compose freely. Initialisation follows the paper: Xavier
weights, zero biases, zero-initialised final router layers; batch-norm with
ε = 1e-6 and a running-average decay of 0.9 (PyTorch momentum 0.1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Pyramid = tuple[Tensor, ...]

BN_EPS = 1e-6
BN_MOMENTUM = 0.1
KCPT_SCALE = 1e7  # routers see k_cpt in units of cost per ten million operations


class _SingleSafe:
    """Batch-norm that normalises a batch of one value per channel with the running
    statistics (leaving them unchanged) even in training mode: such a batch has no
    variance to measure, and routed training can send a single example down a branch."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if self.training and x.numel() // x.shape[1] <= 1:  # type: ignore[attr-defined]
            return F.batch_norm(x, self.running_mean, self.running_var,  # type: ignore[attr-defined]
                                self.weight, self.bias, False, 0.0, self.eps)  # type: ignore[attr-defined]
        return super().forward(x)  # type: ignore[misc]


class BatchNorm1d(_SingleSafe, nn.BatchNorm1d):
    pass


class BatchNorm2d(_SingleSafe, nn.BatchNorm2d):
    pass


def _xavier(module: nn.Module) -> None:
    nn.init.xavier_uniform_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)


class ToPyramid(nn.Module):
    """The paper's ``to_pyramid``: the image itself at ``scales`` resolutions, halving.

    Level i is an area resize by 2^i (the mean of each 2^i × 2^i block), which for
    these integer factors is exact anti-aliased downsampling and cheap.
    """

    def __init__(self, scales: int) -> None:
        super().__init__()
        self.scales = scales

    def forward(self, x: Tensor) -> Pyramid:
        levels = [x]
        for _ in range(1, self.scales):
            levels.append(F.avg_pool2d(levels[-1], 2))
        return tuple(levels)

    def extra_repr(self) -> str:
        return f"scales={self.scales}"


class Identity(nn.Module):
    """A one-level pyramid: the image as it is."""

    def forward(self, x: Tensor) -> Pyramid:
        return (x,)


class Multiscale(nn.Module):
    """The paper's multiscale column (Fig. 3) on the last ``len(channels)`` levels.

    Level 1 is a conv of the input's level; level k > 1 adds a conv of this
    column's own level k−1 after 2×2 max-pooling. Batch-norm and ReLU per level.
    """

    def __init__(self, in_channels: tuple[int, ...], channels: tuple[int, ...],
                 kernel: int = 3) -> None:
        super().__init__()
        pad = kernel // 2
        self.lateral = nn.ModuleList(
            nn.Conv2d(ci, co, kernel, padding=pad, bias=False)
            for ci, co in zip(in_channels, channels))
        self.down = nn.ModuleList(
            nn.Conv2d(cp, co, kernel, padding=pad, bias=False)
            for cp, co in zip(channels[:-1], channels[1:]))
        self.norm = nn.ModuleList(
            BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM) for c in channels)
        for conv in (*self.lateral, *self.down):
            _xavier(conv)

    def forward(self, p: Pyramid) -> Pyramid:
        levels = p[len(p) - len(self.lateral):]
        out: list[Tensor] = []
        for i, x in enumerate(levels):
            y = self.lateral[i](x)
            if i > 0:
                y = y + self.down[i - 1](F.max_pool2d(out[-1], 2))
            out.append(F.relu(self.norm[i](y)))
        return tuple(out)


class OnCoarsest(nn.Module):
    """A plain layer applied to the coarsest level; the result is a one-level pyramid."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, p: Pyramid) -> Pyramid:
        return (self.layer(p[-1]),)


def conv(in_channels: int, channels: int, kernel: int = 3, stride: int = 1,
         dilation: int = 1, groups: int = 1) -> OnCoarsest:
    """A 'same'-padded conv (odd kernel): the output is ⌈H/stride⌉ × ⌈W/stride⌉."""
    layer = nn.Conv2d(in_channels, channels, kernel, stride=stride,
                      padding=dilation * (kernel // 2), dilation=dilation, groups=groups)
    _xavier(layer)
    return OnCoarsest(layer)


def bn(channels: int) -> OnCoarsest:
    return OnCoarsest(BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM))


def relu() -> OnCoarsest:
    return OnCoarsest(nn.ReLU())


def pool(size: int = 2) -> OnCoarsest:
    return OnCoarsest(nn.MaxPool2d(size))


def avgpool(size: int = 2) -> OnCoarsest:
    return OnCoarsest(nn.AvgPool2d(size))


def gap() -> OnCoarsest:
    """Global average pooling: each channel's mean, as a 1×1 map."""
    return OnCoarsest(nn.AdaptiveAvgPool2d(1))


def dropout(p: float = 0.5) -> OnCoarsest:
    return OnCoarsest(nn.Dropout(p))


def projection(in_channels: int, channels: int, stride: int = 1) -> nn.Sequential:
    """A residual block's shortcut when its shape changes: strided 1×1 conv + batch-norm."""
    layer = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
    _xavier(layer)
    return nn.Sequential(layer, BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM))


class Residual(nn.Module):
    """``body(x) + shortcut(x)`` on the coarsest level; the shortcut is the identity
    unless the body changes the shape (then a :func:`projection`)."""

    def __init__(self, *body: nn.Module, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.body = Column(*body)
        self.shortcut = shortcut

    def forward(self, p: Pyramid) -> Pyramid:
        x = p[-1]
        y = self.body((x,))[-1]
        return (y + (x if self.shortcut is None else self.shortcut(x)),)


def residual(*body: nn.Module, shortcut: nn.Module | None = None) -> Residual:
    return Residual(*body, shortcut=shortcut)


def registered(kind: str, in_shape: tuple[int, int, int], **args: object) -> OnCoarsest:
    """A layer kind defined in Python with ``routec.register_layer`` (registered first)."""
    from routec.graph.registry import LAYERS

    entry = LAYERS.get(kind)
    if entry is None or entry.module is None:
        raise RuntimeError(f"layer kind '{kind}' is not registered in this process; call "
                           "routec.register_layer for it before building the network")
    return OnCoarsest(entry.module(dict(args), tuple(in_shape)))


def model_piece(name: str, start: str | None, stop: str | None, in_shape: tuple[int, ...],
                out_shape: tuple[int, ...]) -> OnCoarsest:
    """A piece of a model supplied at run time (routec.backbone.supplied), weights copied."""
    from routec.backbone.supplied import build_piece

    return OnCoarsest(build_piece(name, start, stop, tuple(in_shape), tuple(out_shape)))


class Logits(nn.Module):
    """An exit that reads its column's output as the logits (a model's own head)."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, p: Pyramid, k_cpt: Tensor | None = None) -> Tensor:
        return p[-1].flatten(1)


def logits(classes: int) -> Logits:
    return Logits(classes)


class _FlatLinear(nn.Module):
    def __init__(self, in_features: int, features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, features)
        _xavier(self.linear)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))[:, :, None, None]


def linear(in_features: int, features: int) -> OnCoarsest:
    return OnCoarsest(_FlatLinear(in_features, features))


class Column(nn.Sequential):
    """A column: layers applied in order, pyramid to pyramid."""


class Head(nn.Module):
    """A router or classifier: an MLP on the flattened coarsest level (average-pooled
    to ``pooled`` × ``pooled`` first when ``pooled`` is given).

    Hidden layers are linear → batch-norm → ReLU. A router's last layer starts at
    zero, so every junction begins undecided; with ``k_cpt_input`` the router also
    reads the per-example cost of computation.

    Two ways of reading it (``in_features`` counts the k_cpt column either way):

    * the paper's (``k_cpt_unit`` None): one extra input ``k_cpt × KCPT_SCALE`` beside
      the flattened features, at the first layer only;
    * every layer (``k_cpt_unit`` given): ``log1p(k_cpt / k_cpt_unit)`` concatenated to
      the input of *every* linear layer, the last included. In the paper's form the
      single k column is one of ~2,000 inputs of a batch-normalised layer, so it
      carries a tiny share of the pre-activation and the decision barely moves with
      k_cpt; fed to every layer it reaches the scores through a path of a few weights
      (the last layer's alone, at initialisation), and the log over a unit taken from
      the run's own k grid maps any grid (per MAC or per ms) to values of order 1.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], out_features: int,
                 k_cpt_input: bool = False, zero_last: bool = False, pooled: int = 0,
                 k_cpt_unit: float | None = None) -> None:
        super().__init__()
        if k_cpt_unit is not None and not (k_cpt_input and k_cpt_unit > 0):
            raise ValueError("k_cpt_unit needs k_cpt_input and a positive unit")
        self.k_cpt_input = k_cpt_input
        self.k_cpt_unit = k_cpt_unit
        every = 1 if k_cpt_unit is not None else 0  # k column added after the first layer
        self.pool = nn.AdaptiveAvgPool2d(pooled) if pooled else None
        layers: list[nn.Module] = []
        n = in_features
        for width in hidden:
            lin = nn.Linear(n, width)
            _xavier(lin)
            layers += [lin, BatchNorm1d(width, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU()]
            n = width + every
        last = nn.Linear(n, out_features)
        if zero_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        else:
            _xavier(last)
        layers.append(last)
        self.mlp = nn.Sequential(*layers)

    def forward(self, p: Pyramid, k_cpt: Tensor | None = None) -> Tensor:
        x = (p[-1] if self.pool is None else self.pool(p[-1])).flatten(1)
        if self.k_cpt_input:
            assert k_cpt is not None, "this head reads k_cpt"
            if self.k_cpt_unit is not None:
                return self._every_layer(x, k_cpt)
            x = torch.cat([x, (k_cpt * KCPT_SCALE).to(x.dtype)[:, None]], dim=1)
        return self.mlp(x)

    def _every_layer(self, x: Tensor, k_cpt: Tensor) -> Tensor:
        """The MLP with the log-scaled k_cpt column beside every linear layer's input."""
        assert self.k_cpt_unit is not None
        kf = torch.log1p(k_cpt.to(torch.float32) / self.k_cpt_unit).to(x.dtype)[:, None]
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                x = torch.cat([x, kf], dim=1)
            x = m(x)
        return x


def router(in_features: int, hidden: tuple[int, ...], ways: int,
           k_cpt_input: bool = False, pooled: int = 0,
           k_cpt_unit: float | None = None) -> Head:
    return Head(in_features, hidden, ways, k_cpt_input=k_cpt_input, zero_last=True,
                pooled=pooled, k_cpt_unit=k_cpt_unit)


def classifier(in_features: int, hidden: tuple[int, ...], classes: int,
               pooled: int = 0) -> Head:
    return Head(in_features, hidden, classes, pooled=pooled)
