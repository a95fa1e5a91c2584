"""Priors p(z): standard normal, Laplace, mixture of Gaussians.

Each prior is an ``nn.Module`` whose ``forward()`` returns a fresh ``pyro.distributions``
object with batch shape ``()`` and event shape ``(latent_dim,)``. Fixed values live in
buffers and learnable ones in parameters, so ``model.to(device)`` moves them and the trainer
optimises them with the rest of the model. Distributions skip argument validation (a
host-device sync per call on a GPU); the parameters are positive by construction.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import registry
from ..parts import Prior

MIN_SCALE = 1e-4


def _positive(raw: Tensor) -> Tensor:
    """Softplus, floored at ``MIN_SCALE``: the map from free parameters to scales."""
    return F.softplus(raw) + MIN_SCALE


def _unpositive(value: float) -> float:
    """Inverse of :func:`_positive` for initial values."""
    v = torch.tensor(float(value) - MIN_SCALE)
    return float(v + torch.log(-torch.expm1(-v)))


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"parameter {name!r} must be a positive number, got {value!r}")
    return float(value)


@registry.priors.register("standard_normal")
class StandardNormalPrior(Prior):
    """N(0, I), the seed's prior; no parameters."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        # Non-persistent buffers: they follow .to(device) but are not saved.
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)
        self.register_buffer("scale", torch.ones(latent_dim), persistent=False)

    def forward(self) -> dist.Distribution:
        return dist.Normal(self.loc, self.scale, validate_args=False).to_event(1)


@registry.priors.register("laplace")
class LaplacePrior(Prior):
    """Laplace(0, b) per dimension: sparser codes than a normal prior.

    ``scale`` is b (or its initial value); with ``learn_scale=True`` each dimension learns its
    own b (kept positive through a softplus).
    """

    def __init__(self, latent_dim: int, scale: float = 1.0, learn_scale: bool = False) -> None:
        super().__init__(latent_dim)
        scale = _check_positive("scale", scale)
        self.learn_scale = bool(learn_scale)
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)
        if self.learn_scale:
            self.raw_scale = nn.Parameter(torch.full((latent_dim,), _unpositive(scale)))
        else:
            self.register_buffer("fixed_scale", torch.full((latent_dim,), scale), persistent=False)

    @property
    def scale(self) -> Tensor:
        return _positive(self.raw_scale) if self.learn_scale else self.fixed_scale

    def forward(self) -> dist.Distribution:
        return dist.Laplace(self.loc, self.scale, validate_args=False).to_event(1)


@registry.priors.register("mixture")
class MixturePrior(Prior):
    """Mixture of ``components`` diagonal Gaussians with learnable means, scales and weights.

    Means start spread out, drawn from N(0, ``spread``^2) with torch's RNG (seed it for
    reproducible models); scales start at ``scale``; weights start uniform. There is no
    closed-form KL to a mixture, so a VAE with this prior uses the Monte-Carlo estimate.
    """

    def __init__(
        self,
        latent_dim: int,
        components: int = 10,
        spread: float = 2.0,
        scale: float = 1.0,
        learn_weights: bool = True,
    ) -> None:
        super().__init__(latent_dim)
        if isinstance(components, bool) or not isinstance(components, int) or components < 1:
            raise ValueError(
                f"parameter 'components' must be a positive integer, got {components!r}"
            )
        spread = _check_positive("spread", spread)
        scale = _check_positive("scale", scale)
        self.components = components
        self.means = nn.Parameter(torch.randn(components, latent_dim) * spread)
        self.raw_scales = nn.Parameter(torch.full((components, latent_dim), _unpositive(scale)))
        logits = torch.zeros(components)
        if learn_weights:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits, persistent=False)

    @property
    def scales(self) -> Tensor:
        return _positive(self.raw_scales)

    @property
    def weights(self) -> Tensor:
        return torch.softmax(self.logits, dim=-1)

    def forward(self) -> dist.Distribution:
        components = dist.Normal(self.means, self.scales, validate_args=False).to_event(1)
        weights = dist.Categorical(logits=self.logits, validate_args=False)
        return dist.MixtureSameFamily(weights, components, validate_args=False)
