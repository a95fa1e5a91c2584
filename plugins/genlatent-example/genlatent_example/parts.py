"""The plugin's model parts; ``genlatent_example.register`` adds them to genlatent's registries."""

from __future__ import annotations

import logging

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from genlatent.dataspec import DataSpec
from genlatent.parts import Decoder, Encoder, Likelihood, Prior
from genlatent.training.callbacks import Callback

log = logging.getLogger(__name__)


class StudentTPrior(Prior):
    """Independent Student-t prior with ``df`` degrees of freedom (heavy tails)."""

    def __init__(self, latent_dim: int, df: float = 3.0) -> None:
        super().__init__(latent_dim)
        if df <= 0:
            raise ValueError(f"df must be positive, got {df}")
        self.register_buffer("df", torch.full((latent_dim,), float(df)))
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def forward(self) -> dist.Distribution:
        return dist.StudentT(self.df, self.loc, self.scale).to_event(1)


class ContinuousBernoulliLikelihood(Likelihood):
    """Bernoulli cross-entropy plus its normalising constant, a proper density on [0, 1]."""

    kinds = frozenset({"vectors", "grids"})
    num_params = 1

    def __init__(self, data: DataSpec) -> None:
        super().__init__(data)

    def _dist(self, params: Tensor) -> dist.Distribution:
        logits = params[:, 0]
        return dist.ContinuousBernoulli(logits=logits).to_event(len(self.data.shape))

    def log_prob(self, params: Tensor, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self._dist(params).log_prob(x.to(params.dtype).clamp(0.0, 1.0))

    def mean(self, params: Tensor) -> Tensor:
        return self._dist(params).mean

    def sample(self, params: Tensor) -> Tensor:
        return self._dist(params).sample()


class LinearEncoder(Encoder):
    """One affine map from the flattened data to the posterior's parameters."""

    kinds = frozenset({"vectors", "grids", "counts"})

    def __init__(self, data: DataSpec, out_features: int) -> None:
        super().__init__(data, out_features)
        self.linear = nn.Linear(data.size, out_features)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.linear(x.flatten(1).float())


class LinearDecoder(Decoder):
    """One affine map from z to the likelihood's parameter maps."""

    kinds = frozenset({"vectors", "grids", "counts"})

    def __init__(self, data: DataSpec, latent_dim: int, num_params: int) -> None:
        super().__init__(data, latent_dim, num_params)
        self.linear = nn.Linear(latent_dim, num_params * data.size)

    def forward(self, z: Tensor, x: Tensor | None = None, lengths: Tensor | None = None) -> Tensor:
        return self.linear(z).view(z.shape[0], self.num_params, *self.data.shape)


def _prior_summary(model: nn.Module) -> dict[str, float]:
    """Mean and standard deviation of a few thousand prior draws (a cheap health check)."""
    draws = model.prior.sample(4096) if getattr(model, "prior", None) is not None else None
    if draws is None:
        return {}
    finite = draws[torch.isfinite(draws)]
    return {"prior_mean": float(finite.mean()), "prior_std": float(finite.std())}


class LatentStats(Callback):
    """Adds the prior's sample mean and spread to every epoch's metrics."""

    def on_epoch_end(self, trainer, metrics) -> None:  # type: ignore[no-untyped-def]
        stats = _prior_summary(trainer.model)
        metrics.update(stats)
        if stats:
            log.info("prior mean %.3f std %.3f", stats["prior_mean"], stats["prior_std"])
