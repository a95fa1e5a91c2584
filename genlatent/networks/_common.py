"""Small pieces shared by the networks: parameter checks, activations, normalisation layers.

Every check raises :class:`~genlatent.errors.SpecError` with a one-line message that names the
part (``encoder 'cnn'``) and the parameter, so a bad spec fails at build time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import SpecError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}
NORMS = (None, "batch", "layer")


def where(role: str, name: str) -> str:
    """How messages name a part: ``encoder 'mlp'``."""
    return f"{role} {name!r}"


def int_list(value: Any, param: str, part: str, *, allow_empty: bool = True) -> list[int]:
    """A list of positive ints (a bare int counts as a one-element list)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise SpecError(f"{part}: {param} must be a list of positive integers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(f"{part}: {param} must be a list of positive integers, got {value!r}")
        out.append(int(v))
    if not out and not allow_empty:
        raise SpecError(f"{part}: {param} needs at least one entry, got {value!r}")
    return out


def positive_int(value: Any, param: str, part: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{part}: {param} must be a positive integer, got {value!r}")
    return int(value)


def probability(value: Any, param: str, part: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SpecError(f"{part}: {param} must be a number in [0, 1), got {value!r}")
    return float(value)


def choice(value: Any, options: Sequence[Any], param: str, part: str) -> Any:
    if value not in options:
        shown = ", ".join("None" if o is None else repr(o) for o in options)
        raise SpecError(f"{part}: {param} must be one of {shown}, got {value!r}")
    return value


def activation(name: Any, part: str) -> nn.Module:
    """A fresh activation module by name (see :data:`ACTIVATIONS`)."""
    choice(name, list(ACTIVATIONS), "activation", part)
    return ACTIVATIONS[name]()


def dense_norm(kind: str | None, features: int) -> nn.Module:
    """Normalisation for a dense layer's output ``(B, features)``."""
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    return nn.Identity()


def conv_norm(kind: str | None, channels: int, dims: int) -> nn.Module:
    """Normalisation for a conv stage's output ``(B, C, *spatial)``.

    "layer" normalises over channels and space together (GroupNorm with one group), which
    works for any spatial size.
    """
    if kind == "batch":
        return nn.BatchNorm1d(channels) if dims == 1 else nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def dense_stack(
    sizes: Sequence[int], act: str, norm: str | None, dropout: float, part: str
) -> nn.Sequential:
    """Linear -> norm -> activation -> dropout for each consecutive pair in ``sizes``."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), dense_norm(norm, n_out), activation(act, part)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def condition_dim(value: Any, part: str) -> int:
    """The width of the condition vector a network takes (0: none)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{part}: condition_dim must be an integer >= 0, got {value!r}")
    return value


def with_condition(h: Tensor, condition: Tensor | None, width: int) -> Tensor:
    """``h`` ``(B, F)`` with the condition ``(B, width)`` concatenated (``h`` itself when the
    network takes none). A missing or mis-sized condition is a clear error, not a shape error
    deep inside a layer."""
    if width == 0:
        if condition is not None and condition.shape[-1] != 0:
            raise SpecError("this network takes no condition (built with condition_dim=0)")
        return h
    if condition is None:
        raise SpecError(f"this network is conditioned (condition_dim={width}); pass condition=")
    if condition.dim() != 2 or condition.shape[0] != h.shape[0] or condition.shape[1] != width:
        raise SpecError(
            f"condition has shape {list(condition.shape)}, expected [{h.shape[0]}, {width}]"
        )
    return torch.cat([h, condition.to(h.dtype)], dim=1)
