"""The contracts between interchangeable parts.

A model is an encoder, a posterior, a prior, a decoder and a likelihood. Each is an
``nn.Module`` registered by name (see :mod:`genlatent.registry`) and built from the data spec
and its own keyword parameters, so any encoder fits any posterior and any decoder fits any
likelihood whose data kinds it supports:

- ``Encoder(data, out_features, **params)``: ``forward(x, lengths=None) -> (B, out_features)``.
  ``out_features = posterior.num_params * latent_dim`` (or ``latent_dim`` for the AE).
- ``Posterior(latent_dim, **params)``: ``num_params`` values per latent dimension;
  ``forward(params) -> Distribution`` with batch shape ``(B,)``, event shape ``(latent_dim,)``
  and ``rsample``.
- ``Prior(latent_dim, **params)``: ``forward() -> Distribution`` with batch shape ``()`` and
  event shape ``(latent_dim,)``; may hold learnable parameters.
- ``Decoder(data, latent_dim, num_params, **params)``: ``forward(z, x=None, lengths=None) ->
  (B, num_params, *data.shape)`` for every kind; token data too: the categorical likelihood
  has ``num_params = vocab_size``, so ``(B, vocab_size, L)`` where ``L`` is the length of ``x``
  (teacher forcing). Autoregressive decoders also have ``generate``.
- ``Likelihood(data, **params)``: ``num_params`` parameter maps per data value;
  ``log_prob(params, x, lengths=None) -> (B,)`` in nats, summed over the data dimensions.

Each class says which data kinds it supports in ``kinds``; :func:`genlatent.build` checks the
pairing and fails with a clear message before any weight is made.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from .data.spec import DataSpec


class Encoder(nn.Module):
    """Maps a batch of data to the flat parameters of the posterior."""

    kinds: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, data: DataSpec, out_features: int) -> None:
        super().__init__()
        self.data = data
        self.out_features = out_features

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class Decoder(nn.Module):
    """Maps latent codes to the parameters of the likelihood."""

    kinds: ClassVar[frozenset[str]] = frozenset()
    autoregressive: ClassVar[bool] = False

    def __init__(self, data: DataSpec, latent_dim: int, num_params: int) -> None:
        super().__init__()
        self.data = data
        self.latent_dim = latent_dim
        self.num_params = num_params

    def forward(
        self, z: Tensor, x: Tensor | None = None, lengths: Tensor | None = None
    ) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def generate(
        self,
        z: Tensor,
        *,
        max_length: int | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """Autoregressive decoders: token ids ``(B, L)`` and lengths ``(B,)``."""
        raise NotImplementedError(f"{type(self).__name__} is not autoregressive")


class Posterior(nn.Module):
    """Turns the encoder's flat output into q(z|x)."""

    num_params: int = 2

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self, params: Tensor) -> Distribution:  # pragma: no cover
        raise NotImplementedError


class Prior(nn.Module):
    """p(z): sampled, scored, possibly learned."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self) -> Distribution:  # pragma: no cover
        raise NotImplementedError

    def sample(self, n: int) -> Tensor:
        """``n`` draws, shape ``(n, latent_dim)``."""
        with torch.no_grad():
            return self().sample((n,))

    def log_prob(self, z: Tensor) -> Tensor:
        """Log density of ``z`` of shape ``(..., latent_dim)``."""
        return self().log_prob(z)


class Likelihood(nn.Module):
    """p(x|z) from the decoder's parameter maps."""

    kinds: ClassVar[frozenset[str]] = frozenset()
    num_params: int = 1

    def __init__(self, data: DataSpec) -> None:
        super().__init__()
        self.data = data

    def log_prob(
        self, params: Tensor, x: Tensor, lengths: Tensor | None = None
    ) -> Tensor:  # pragma: no cover
        """Per-example log-likelihood in nats, summed over data dimensions: shape ``(B,)``."""
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:  # pragma: no cover
        """The expected data (reconstruction), shape ``(B, *data.shape)``."""
        raise NotImplementedError

    def sample(self, params: Tensor) -> Tensor:  # pragma: no cover
        """One draw of data, shape ``(B, *data.shape)``."""
        raise NotImplementedError
