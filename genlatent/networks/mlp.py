"""Fully connected encoder and decoder for flat data (vectors, counts, flattened grids)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import registry
from ..dataspec import DataSpec
from ..parts import Decoder, Encoder
from . import _common as c

DEFAULT_HIDDEN = (400,)


@registry.encoders.register("mlp")
class MLPEncoder(Encoder):
    """Flattens one example and maps it through dense layers to the posterior's parameters.

    Params: ``hidden`` (sizes from the input side), ``activation``, ``norm`` (None, "batch",
    "layer"), ``dropout``, ``log1p`` (apply ``log(1 + x)`` to the input; default on for counts,
    as scVI does, so that counts spanning orders of magnitude give well-scaled inputs).
    A condition vector (``condition_dim`` > 0) is concatenated to the flattened input.
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"vectors", "counts", "grids"})

    def __init__(
        self,
        data: DataSpec,
        out_features: int,
        *,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        activation: str = "relu",
        norm: str | None = None,
        dropout: float = 0.0,
        log1p: bool | None = None,
        condition_dim: int = 0,
    ) -> None:
        super().__init__(data, out_features)
        part = c.where("encoder", "mlp")
        self.condition_dim = c.condition_dim(condition_dim, part)
        hidden = c.int_list(hidden, "hidden", part)
        c.choice(norm, c.NORMS, "norm", part)
        dropout = c.probability(dropout, "dropout", part)
        c.choice(log1p, (None, True, False), "log1p", part)
        self.log1p = data.kind == "counts" if log1p is None else bool(log1p)
        inputs = data.size + self.condition_dim
        self.body = c.dense_stack([inputs, *hidden], activation, norm, dropout, part)
        self.head = nn.Linear(([inputs, *hidden])[-1], out_features)

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> Tensor:
        x = x.reshape(x.shape[0], -1).to(self.head.weight.dtype)
        if self.log1p:
            x = torch.log1p(x)
        return self.head(self.body(c.with_condition(x, condition, self.condition_dim)))

    def resolved_params(self) -> dict[str, Any]:
        """``log1p=None`` (on for counts) is saved as the choice made."""
        return {**super().resolved_params(), "log1p": self.log1p}


@registry.decoders.register("mlp")
class MLPDecoder(Decoder):
    """Maps z through dense layers to ``num_params`` maps of the data's shape.

    ``hidden`` is given as for the encoder (from the data side) and used in reverse, so the
    same list on both sides gives mirrored networks. A condition vector (``condition_dim`` > 0)
    is concatenated to z.
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"vectors", "counts", "grids"})

    def __init__(
        self,
        data: DataSpec,
        latent_dim: int,
        num_params: int,
        *,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        activation: str = "relu",
        norm: str | None = None,
        dropout: float = 0.0,
        condition_dim: int = 0,
    ) -> None:
        super().__init__(data, latent_dim, num_params)
        part = c.where("decoder", "mlp")
        self.condition_dim = c.condition_dim(condition_dim, part)
        sizes = [latent_dim + self.condition_dim, *reversed(c.int_list(hidden, "hidden", part))]
        c.choice(norm, c.NORMS, "norm", part)
        dropout = c.probability(dropout, "dropout", part)
        self.body = c.dense_stack(sizes, activation, norm, dropout, part)
        self.head = nn.Linear(sizes[-1], num_params * data.size)

    def forward(
        self,
        z: Tensor,
        x: Tensor | None = None,
        lengths: Tensor | None = None,
        condition: Tensor | None = None,
    ) -> Tensor:
        out = self.head(self.body(c.with_condition(z, condition, self.condition_dim)))
        return out.reshape(z.shape[0], self.num_params, *self.data.shape)
