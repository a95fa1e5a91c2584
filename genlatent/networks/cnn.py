"""Convolutional encoder and decoder for 1-D signals ``(C, L)`` and 2-D grids ``(C, H, W)``.

Nothing is tied to one input size: :func:`stage_sizes` computes the spatial size after every
encoder stage from the data spec, and the decoder upsamples back to exactly those sizes
(transposed convolutions with the right ``output_padding``, or interpolation to the recorded
size followed by a stride-1 convolution). So 1x28x28, 1x27x33 and 1x500 all work with the
same defaults.

``padding_mode="circular"`` wraps every convolution around the edges, for periodic lattices
(Ising): shifting the input shifts the feature maps. The decoder then upsamples by
nearest-neighbour interpolation and circular stride-1 convolutions by default; with
``upsample="transpose"`` its transposed convolutions run unpadded and fold what spills over
each edge back onto the other side (:func:`wrap_fold`): the exact adjoint of the encoder's
circular convolution, 2x faster, but measured worse on Ising data early in training.

Two styles (``style``), chosen by ``benchmarks/bench_networks.py --variants`` (table in
``docs/networks.md``): "light" (default), the classic convolutional VAE: 4-wide kernels on
stride-2 stages, and the decoder's last upsampling stage produces the likelihood's parameters
directly; "heavy" (the default before 2026-12): 3-wide kernels, and the decoder upsamples to
``channels[0]`` feature maps at full resolution and adds a 3x3 output convolution there,
which costs 2-3x the training time on 28x28 images and gives no better likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from .. import registry
from ..dataspec import DataSpec
from ..errors import SpecError
from ..parts import Decoder, Encoder
from . import _common as c

DEFAULT_CHANNELS = (32, 64)
STYLES = ("light", "heavy")
PADDING_MODES = ("zeros", "circular", "reflect", "replicate")
UPSAMPLE_MODES = ("transpose", "nearest", "linear")
_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}


def _per_stage(value: Any, n: int, param: str, part: str) -> list[int]:
    """An int for every stage, from one int or a list of ``n`` ints."""
    values = c.int_list(value, param, part, allow_empty=False)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise SpecError(f"{part}: {param} needs 1 or {n} values (one per stage), got {value!r}")
    return values


def _padding(kernel: int) -> int:
    return (kernel - 1) // 2


def wrap_fold(h: Tensor, target: Sequence[int], offset: int) -> Tensor:
    """Fold an unpadded transposed convolution's output onto a periodic ``target`` size.

    Position ``j`` of every spatial axis lands on ``(j - offset) % n`` (``offset`` is the
    padding the encoder's convolution used), summing what overlaps: the adjoint of a circular
    convolution, so shifting the input by ``d`` shifts the output by ``stride * d``.
    """
    for axis, n in enumerate(target, start=2):
        length = h.shape[axis]
        folds = -(-length // n)
        if folds * n != length:
            pad = [0, 0] * (h.dim() - 1 - axis) + [0, folds * n - length]
            h = F.pad(h, pad)
        h = h.roll(-offset, axis).unflatten(axis, (folds, n)).sum(axis)
    return h


def default_kernels(spatial: Sequence[int], strides: Sequence[int], style: str) -> list[int]:
    """The kernel of every stage when none is given.

    "light": 4 for a stride-2 stage (a 4-wide transposed convolution of stride 2 gives every
    output site the same number of taps; a 3-wide one alternates 1 and 2, which measurably
    costs likelihood), 3 for other strides and for maps thinner than 2 sites (where 4 with
    padding 1 does not fit). "heavy": 3 everywhere.
    """
    kernels, size = [], tuple(spatial)
    for s in strides:
        k = 4 if style == "light" and s == 2 and min(size) >= 2 else 3
        kernels.append(k)
        size = stage_sizes(size, [k], [s])[-1]
    return kernels


def stage_sizes(
    spatial: Sequence[int], kernels: Sequence[int], strides: Sequence[int]
) -> list[tuple[int, ...]]:
    """Spatial size before the first stage and after each stage (``padding = (k - 1) // 2``)."""
    sizes = [tuple(spatial)]
    for k, s in zip(kernels, strides, strict=True):
        p = _padding(k)
        sizes.append(tuple((n + 2 * p - k) // s + 1 for n in sizes[-1]))
    return sizes


class _Geometry:
    """The checked conv parameters shared by the CNN encoder and decoder."""

    def __init__(
        self,
        data: DataSpec,
        part: str,
        channels: Any,
        kernel: Any,
        stride: Any,
        padding_mode: str | None,
        padding: str | None,
        norm: str | None,
        activation: str,
        style: str,
    ) -> None:
        self.style = c.choice(style, STYLES, "style", part)
        if padding is not None and padding_mode is not None and padding != padding_mode:
            raise SpecError(
                f"{part}: give padding_mode or padding, not both ({padding_mode!r}, {padding!r})"
            )
        mode = padding_mode if padding_mode is not None else (padding or "zeros")
        self.padding_mode = c.choice(mode, PADDING_MODES, "padding_mode", part)
        self.channels = c.int_list(channels, "channels", part, allow_empty=False)
        n = len(self.channels)
        self.strides = _per_stage(stride, n, "stride", part)
        if kernel is None:
            self.kernels = default_kernels(data.shape[1:], self.strides, self.style)
        else:
            self.kernels = _per_stage(kernel, n, "kernel", part)
        self.norm = c.choice(norm, c.NORMS, "norm", part)
        c.activation(activation, part)  # check the name now
        self.activation = activation
        self.in_channels = data.shape[0]
        self.dims = len(data.shape) - 1
        self.sizes = stage_sizes(data.shape[1:], self.kernels, self.strides)
        self.shape = "x".join(map(str, data.shape))
        for i, k in enumerate(self.kernels):
            if min(self.sizes[i + 1]) < 1:
                raise SpecError(
                    f"{part}: {n} stages with stride {self.strides} and kernel {self.kernels} "
                    f"shrink data of shape {self.shape} to nothing at stage {i + 1}; "
                    f"use fewer channels entries, smaller kernels or smaller strides"
                )
            self.check_padding(part, k, self.sizes[i], f"stage {i + 1}")

    def check_padding(self, part: str, kernel: int, size: tuple[int, ...], where: str) -> None:
        """Circular/reflect/replicate padding cannot be wider than the map (reflect: narrower)."""
        if self.padding_mode == "zeros":
            return
        limit = min(size) - 1 if self.padding_mode == "reflect" else min(size)
        if _padding(kernel) > limit:
            raise SpecError(
                f"{part}: kernel {kernel} is too large for {self.padding_mode} padding of a "
                f"{'x'.join(map(str, size))} map at {where} (data shape {self.shape})"
            )

    def act(self, part: str) -> nn.Module:
        return c.activation(self.activation, part)


@registry.encoders.register("cnn")
class CNNEncoder(Encoder):
    """Strided convolution stages, then dense layers to the posterior's parameters.

    Params: ``channels`` (one entry per stage, default ``[32, 64]``), ``kernel`` and ``stride``
    (default 2), each one int or one per stage; ``padding_mode`` ("zeros", "circular",
    "reflect", "replicate"; ``padding`` is accepted as an alias), ``norm`` (None, "batch",
    "layer"), ``activation``, ``hidden`` (dense sizes after flattening, default none),
    ``dropout`` (on those dense layers), ``style`` ("light" or "heavy", which only sets the
    kernel default: see :func:`default_kernels`). The kernels used are ``geometry.kernels``.
    A condition vector (``condition_dim`` > 0) is concatenated to the flattened features.
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"grids"})

    def __init__(
        self,
        data: DataSpec,
        out_features: int,
        *,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        kernel: int | Sequence[int] | None = None,
        stride: int | Sequence[int] = 2,
        padding_mode: str | None = None,
        padding: str | None = None,
        norm: str | None = None,
        activation: str = "relu",
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        style: str = "light",
        condition_dim: int = 0,
    ) -> None:
        super().__init__(data, out_features)
        part = c.where("encoder", "cnn")
        self.condition_dim = c.condition_dim(condition_dim, part)
        g = _Geometry(
            data, part, channels, kernel, stride, padding_mode, padding, norm, activation, style
        )
        self.geometry = g
        self.style = g.style
        conv = _CONV[g.dims]
        stages: list[nn.Module] = []
        n_in = g.in_channels
        for n_out, k, s in zip(g.channels, g.kernels, g.strides, strict=True):
            stages += [
                conv(n_in, n_out, k, s, _padding(k), padding_mode=g.padding_mode),
                c.conv_norm(g.norm, n_out, g.dims),
                g.act(part),
            ]
            n_in = n_out
        self.conv = nn.Sequential(*stages)
        flat = g.channels[-1] * math.prod(g.sizes[-1]) + self.condition_dim
        hidden = c.int_list(hidden, "hidden", part)
        dropout = c.probability(dropout, "dropout", part)
        self.dense = c.dense_stack([flat, *hidden], activation, None, dropout, part)
        self.head = nn.Linear(([flat, *hidden])[-1], out_features)

    def features(self, x: Tensor) -> Tensor:
        """The last conv stage's feature maps ``(B, channels[-1], *sizes[-1])``."""
        return self.conv(x.to(self.head.weight.dtype))

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> Tensor:
        h = c.with_condition(self.features(x).flatten(1), condition, self.condition_dim)
        return self.head(self.dense(h))

    #: models saved before ``style`` existed were "heavy"
    legacy_defaults: ClassVar[dict[str, Any]] = {"style": "heavy"}

    def resolved_params(self) -> dict[str, Any]:
        """The padding and kernels actually used (``padding`` alias folded into
        ``padding_mode``; ``kernel=None`` recorded as the kernels the style chose)."""
        resolved = super().resolved_params()
        g = self.geometry
        resolved.update(padding_mode=g.padding_mode, padding=None, kernel=list(g.kernels))
        return resolved


class _UpStage(nn.Module):
    """Upsample ``(B, C_in, *n)`` to exactly ``(B, C_out, *target)``."""

    def __init__(
        self,
        g: _Geometry,
        n_in: int,
        n_out: int,
        k: int,
        s: int,
        source: tuple[int, ...],
        target: tuple[int, ...],
        mode: str,
    ) -> None:
        super().__init__()
        self.target = target
        self.mode = mode
        p = _padding(k)
        self.wrap = mode == "transpose" and g.padding_mode == "circular"
        if self.wrap:  # unpadded, folded around the edges (wrap_fold), then the bias
            self.offset = p
            self.conv = _CONV_T[g.dims](n_in, n_out, k, s)
            self.bias = self.conv.bias  # added once per site, after the fold
            self.conv.register_parameter("bias", None)
            self.resize = False
        elif mode == "transpose":
            natural = [(n - 1) * s - 2 * p + k for n in source]
            extra = [t - m for t, m in zip(target, natural, strict=True)]
            fits = all(0 <= e < s for e in extra)
            self.conv = _CONV_T[g.dims](
                n_in, n_out, k, s, p, output_padding=tuple(extra) if fits else 0
            )
            self.resize = not fits  # only for unusual kernel/stride pairs
        else:
            # a stride-1 "same" convolution needs an odd kernel: 4 -> 3 (light), 4 -> 5 (heavy)
            k_odd = k if k % 2 else (k - 1 if g.style == "light" else k + 1)
            g.check_padding(c.where("decoder", "cnn"), k_odd, target, "an upsampling stage")
            self.conv = _CONV[g.dims](
                n_in, n_out, k_odd, 1, _padding(k_odd), padding_mode=g.padding_mode
            )
            self.resize = True

    def forward(self, h: Tensor) -> Tensor:
        if self.wrap:
            h = wrap_fold(self.conv(h), self.target, self.offset)
            return h + self.bias.view(-1, *[1] * len(self.target))
        if self.mode == "transpose":
            h = self.conv(h)
            if self.resize and tuple(h.shape[2:]) != self.target:
                h = F.interpolate(h, size=self.target, mode="nearest")
            return h
        if tuple(h.shape[2:]) != self.target:
            if self.mode == "nearest":
                h = F.interpolate(h, size=self.target, mode="nearest")
            else:
                h = F.interpolate(
                    h,
                    size=self.target,
                    mode="linear" if h.dim() == 3 else "bilinear",
                    align_corners=False,
                )
        return self.conv(h)


@registry.decoders.register("cnn")
class CNNDecoder(Decoder):
    """The mirror of :class:`CNNEncoder`: dense layers, a reshape, then upsampling stages.

    Takes the encoder's params with the same meaning (``channels``, ``kernel``, ``stride`` and
    ``hidden`` listed from the data side) and runs them in reverse, ending at the data's exact
    spatial size with ``num_params * C`` channels. ``style``: "light" (default: the last
    upsampling stage outputs those channels) or "heavy" (it outputs ``channels[0]`` maps, then
    a 3x3 convolution at full resolution; the pre-2026-12 default). ``upsample``: "transpose"
    (transposed convolutions; the default with zero padding; with circular padding they wrap
    around the edges), "nearest" (the default otherwise) or "linear" (interpolation, then a
    stride-1 convolution). The resolved choices are the attributes ``style`` and ``upsample``.
    A condition vector (``condition_dim`` > 0) is concatenated to z before the dense layers.
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"grids"})

    def __init__(
        self,
        data: DataSpec,
        latent_dim: int,
        num_params: int,
        *,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        kernel: int | Sequence[int] | None = None,
        stride: int | Sequence[int] = 2,
        padding_mode: str | None = None,
        padding: str | None = None,
        norm: str | None = None,
        activation: str = "relu",
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        upsample: str | None = None,
        style: str = "light",
        condition_dim: int = 0,
    ) -> None:
        super().__init__(data, latent_dim, num_params)
        part = c.where("decoder", "cnn")
        self.condition_dim = c.condition_dim(condition_dim, part)
        g = _Geometry(
            data, part, channels, kernel, stride, padding_mode, padding, norm, activation, style
        )
        self.geometry = g
        self.style = g.style
        light = self.style == "light"
        if upsample is None:  # on Ising data nearest + conv beats the wrapped transpose
            upsample = "transpose" if g.padding_mode == "zeros" else "nearest"
        self.upsample = c.choice(upsample, UPSAMPLE_MODES, "upsample", part)
        if upsample == "transpose" and g.padding_mode not in ("zeros", "circular"):
            raise SpecError(
                f"{part}: upsample 'transpose' cannot pad {g.padding_mode!r}; use upsample "
                f"'nearest' or 'linear' with padding_mode {g.padding_mode!r}"
            )
        hidden = c.int_list(hidden, "hidden", part)
        dropout = c.probability(dropout, "dropout", part)
        sizes = [latent_dim + self.condition_dim, *reversed(hidden)]
        self.dense = c.dense_stack(sizes, activation, None, dropout, part)
        self.start = (g.channels[-1], *g.sizes[-1])
        self.project = nn.Sequential(nn.Linear(sizes[-1], math.prod(self.start)), g.act(part))
        outputs = num_params * g.in_channels
        stages: list[nn.Module] = []
        for i in reversed(range(len(g.channels))):
            n_in = g.channels[i]
            last = light and i == 0
            n_out = outputs if last else g.channels[max(i - 1, 0)]
            stages.append(
                _UpStage(
                    g, n_in, n_out, g.kernels[i], g.strides[i], g.sizes[i + 1], g.sizes[i], upsample
                )
            )
            if not last:
                stages += [c.conv_norm(g.norm, n_out, g.dims), g.act(part)]
        self.up = nn.Sequential(*stages)
        if light:
            self.out = nn.Identity()
        else:
            g.check_padding(part, 3, g.sizes[0], "the output layer")
            self.out = _CONV[g.dims](g.channels[0], outputs, 3, 1, 1, padding_mode=g.padding_mode)

    def forward(
        self,
        z: Tensor,
        x: Tensor | None = None,
        lengths: Tensor | None = None,
        condition: Tensor | None = None,
    ) -> Tensor:
        h = self.dense(c.with_condition(z, condition, self.condition_dim))
        h = self.project(h).reshape(z.shape[0], *self.start)
        out = self.out(self.up(h))
        return out.reshape(z.shape[0], self.num_params, *self.data.shape)

    #: models saved before ``style`` existed were "heavy"
    legacy_defaults: ClassVar[dict[str, Any]] = {"style": "heavy"}

    def resolved_params(self) -> dict[str, Any]:
        """The padding, kernels and upsampling actually used (``None`` lets the padding and
        the style choose them)."""
        resolved = super().resolved_params()
        g = self.geometry
        resolved.update(padding_mode=g.padding_mode, padding=None, kernel=list(g.kernels))
        resolved["upsample"] = self.upsample
        return resolved
