"""Posteriors q(z|x): diagonal normal (the seed's) and diagonal Laplace.

The encoder emits ``2 * latent_dim`` numbers per example: the first half is the location,
the second half a free value mapped to a scale by ``softplus(raw) + min_scale``. Softplus
(rather than ``exp`` of a log-scale) grows linearly for large inputs, so a wild encoder
output cannot overflow the scale, and the ``min_scale`` floor keeps ``log scale`` finite.

Distributions are made with ``validate_args=False``: argument checks cost a host-device sync
per step on a GPU, and a non-finite encoder output shows up as a non-finite loss anyway.
"""

from __future__ import annotations

from typing import ClassVar

import pyro.distributions as dist
from torch import Tensor
from torch.nn import functional as F

from .. import registry
from ..parts import Posterior


class LocScalePosterior(Posterior):
    """A factorised location-scale posterior; subclasses name the family."""

    family: ClassVar[type[dist.Distribution]]
    num_params = 2

    def __init__(self, latent_dim: int, min_scale: float = 1e-4) -> None:
        super().__init__(latent_dim)
        if isinstance(min_scale, bool) or not isinstance(min_scale, (int, float)) or min_scale < 0:
            raise ValueError(
                f"parameter 'min_scale' must be a non-negative number, got {min_scale!r}"
            )
        self.min_scale = float(min_scale)

    def split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """Location and scale ``(B, latent_dim)`` from the encoder's ``(B, 2 * latent_dim)``."""
        d = self.latent_dim
        if params.dim() != 2 or params.shape[-1] != 2 * d:
            raise ValueError(
                f"{type(self).__name__} expects encoder output (B, {2 * d}), "
                f"got {tuple(params.shape)}"
            )
        loc, raw = params[:, :d], params[:, d:]
        return loc, F.softplus(raw) + self.min_scale

    def forward(self, params: Tensor) -> dist.Distribution:
        loc, scale = self.split(params)
        return self.family(loc, scale, validate_args=False).to_event(1)


@registry.posteriors.register("normal")
class NormalPosterior(LocScalePosterior):
    """N(mu, diag sigma^2), the seed's posterior."""

    family = dist.Normal


@registry.posteriors.register("laplace")
class LaplacePosterior(LocScalePosterior):
    """Laplace(mu, b) per dimension: heavier tails than the normal posterior."""

    family = dist.Laplace
