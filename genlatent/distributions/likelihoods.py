"""Likelihoods p(x|z): Bernoulli, Gaussian, categorical tokens, Poisson, negative binomial.

Each declares the values it can score in ``support`` (a ``torch.distributions.constraints``
object, as in Pyro): :func:`genlatent.build` refuses data that leave it when given a summary of
the data's values (see :mod:`genlatent.data.values`).

The decoder emits ``params`` of shape ``(B, num_params, *data.shape)`` (the ``num_params``
axis is there even when it is 1). Token data follow the same rule: the categorical likelihood
has ``num_params = vocab_size`` (one logit per token of the vocabulary at each position), so
its parameters are ``(B, vocab_size, L)``, with ``L`` the length of the batch (sequences are
trimmed to the longest one, ``L <= max_length``).
:meth:`log_prob` returns the per-example log-likelihood in nats, summed over every data
value (token data: over the unpadded positions), shape ``(B,)``.

Positive quantities are made from free decoder outputs with a named link:

- Gaussian learned sigma: ``softplus(raw) + min_sigma``.
- Poisson / negative-binomial mean: ``link="exp"`` (default, the log link of count GLMs and
  scVI: the decoder outputs a log-rate, clamped to [-20, 20]) or ``link="softplus"``.
- Negative-binomial inverse dispersion theta: one learnable value per feature (as in scVI's
  gene-wise dispersion), ``theta = exp(log_theta)``; variance = mu + mu^2 / theta.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import constraints
from torch.nn import functional as F

from .. import registry
from ..dataspec import EOS_ID, PAD_ID, DataSpec
from ..parts import Likelihood

LOG_RATE_BOUND = 20.0


class ValueLikelihood(Likelihood):
    """Base of likelihoods over fixed-shape data: checks the parameter layout."""

    def _maps(self, params: Tensor, x: Tensor | None = None) -> tuple[Tensor, ...]:
        """The ``num_params`` parameter maps, each ``(B, *data.shape)``."""
        expected = (self.num_params, *self.data.shape)
        if tuple(params.shape[1:]) != expected:
            raise ValueError(
                f"{type(self).__name__} expects decoder output "
                f"(B, {', '.join(map(str, expected))}), got {tuple(params.shape)}"
            )
        if x is not None and tuple(x.shape[1:]) != self.data.shape:
            raise ValueError(
                f"{type(self).__name__} expects data (B, {', '.join(map(str, self.data.shape))}), "
                f"got {tuple(x.shape)}"
            )
        return params.unbind(1)


def _per_example(values: Tensor) -> Tensor:
    """Sum everything but the batch axis."""
    return values.flatten(1).sum(1)


@registry.likelihoods.register("bernoulli")
class BernoulliLikelihood(ValueLikelihood):
    """Bernoulli from logits: the (binary) cross-entropy of the seed, for data in [0, 1].

    Non-binary values in [0, 1] (grey levels) are scored by the same cross-entropy, which is
    then a log-likelihood only up to a constant, as in the seed.
    """

    kinds = frozenset({"vectors", "grids"})
    num_params = 1
    support = constraints.unit_interval

    def log_prob(self, params: Tensor, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        (logits,) = self._maps(params, x)
        x = x.to(logits.dtype)
        return -_per_example(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))

    def mean(self, params: Tensor) -> Tensor:
        (logits,) = self._maps(params)
        return torch.sigmoid(logits)

    def sample(self, params: Tensor) -> Tensor:
        return torch.bernoulli(self.mean(params))


@registry.likelihoods.register("gaussian")
class GaussianLikelihood(ValueLikelihood):
    """Normal(mu, sigma^2) per value; the decoder gives mu.

    ``variance``: ``"fixed"`` (sigma = ``sigma``), ``"learned_global"`` (one learnable sigma
    for all values, starting at ``sigma``) or ``"learned_per_value"`` (the decoder also gives
    each value's sigma: ``num_params = 2``, sigma = softplus(raw) + ``min_sigma``).
    """

    kinds = frozenset({"vectors", "grids"})
    support = constraints.real
    VARIANCES = ("fixed", "learned_global", "learned_per_value")

    def __init__(
        self,
        data: DataSpec,
        variance: str = "fixed",
        sigma: float = 1.0,
        min_sigma: float = 1e-3,
    ) -> None:
        super().__init__(data)
        if variance not in self.VARIANCES:
            raise ValueError(
                f"parameter 'variance' must be one of {', '.join(self.VARIANCES)}, got {variance!r}"
            )
        for name, value in (("sigma", sigma), ("min_sigma", min_sigma)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"parameter {name!r} must be a positive number, got {value!r}")
        if variance == "learned_global" and sigma <= min_sigma:
            raise ValueError(f"parameter 'sigma' ({sigma}) must exceed 'min_sigma' ({min_sigma})")
        self.variance = variance
        self.min_sigma = float(min_sigma)
        self.num_params = 2 if variance == "learned_per_value" else 1
        if variance == "learned_global":
            raw = math.log(math.expm1(sigma - min_sigma))
            self.raw_sigma = nn.Parameter(torch.tensor(raw))
        else:
            self.register_buffer("fixed_sigma", torch.tensor(float(sigma)), persistent=False)

    def loc_scale(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation maps, each ``(B, *data.shape)``."""
        maps = self._maps(params)
        loc = maps[0]
        if self.variance == "learned_per_value":
            return loc, F.softplus(maps[1]) + self.min_sigma
        if self.variance == "learned_global":
            sigma = F.softplus(self.raw_sigma) + self.min_sigma
        else:
            sigma = self.fixed_sigma
        return loc, sigma.to(loc.dtype).expand_as(loc)

    def log_prob(self, params: Tensor, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        self._maps(params, x)
        loc, scale = self.loc_scale(params)
        z = (x.to(loc.dtype) - loc) / scale
        return _per_example(-0.5 * z.pow(2) - torch.log(scale) - 0.5 * math.log(2 * math.pi))

    def mean(self, params: Tensor) -> Tensor:
        return self.loc_scale(params)[0]

    def sample(self, params: Tensor) -> Tensor:
        loc, scale = self.loc_scale(params)
        return loc + scale * torch.randn_like(loc)


@registry.likelihoods.register("categorical")
class CategoricalLikelihood(Likelihood):
    """Categorical over the vocabulary at each position of a token sequence.

    ``params`` are logits ``(B, vocab_size, L)`` (``num_params = vocab_size``: the general
    ``(B, num_params, *data.shape)`` layout) and ``x`` ids ``(B, L)``. Positions at or past
    ``lengths`` (or, without lengths, holding ``<pad>``) are masked; the per-example value is
    the sum over the remaining positions, ``<eos>`` included.
    """

    kinds = frozenset({"tokens"})

    def __init__(self, data: DataSpec) -> None:
        super().__init__(data)
        self.num_params = data.vocab_size

    def _check(self, params: Tensor) -> None:
        if params.dim() != 3 or params.shape[1] != self.data.vocab_size:
            raise ValueError(
                f"CategoricalLikelihood expects decoder logits (B, {self.data.vocab_size}, L), "
                f"got {tuple(params.shape)}"
            )

    def mask(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, L)`` boolean: which positions count."""
        if lengths is None:
            return x != PAD_ID
        positions = torch.arange(x.shape[1], device=x.device)
        return positions.unsqueeze(0) < lengths.to(x.device).unsqueeze(1)

    def log_prob(self, params: Tensor, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        self._check(params)
        if x.dim() != 2 or x.shape[0] != params.shape[0] or x.shape[1] != params.shape[2]:
            raise ValueError(
                f"CategoricalLikelihood: logits {tuple(params.shape)} do not match token ids "
                f"{tuple(x.shape)} (expected (B, V, L) and (B, L))"
            )
        x = x.long()
        nll = F.cross_entropy(params, x, reduction="none")
        return -(nll * self.mask(x, lengths).to(nll.dtype)).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        """The most probable token at each position, ``(B, L)``."""
        self._check(params)
        return params.argmax(1)

    def sample(self, params: Tensor) -> Tensor:
        self._check(params)
        logits = params.transpose(1, 2)
        return torch.distributions.Categorical(logits=logits, validate_args=False).sample()


def lengths_from_ids(ids: Tensor) -> Tensor:
    """Length of each sequence up to and including its first ``<eos>`` (all of it if none)."""
    is_eos = ids == EOS_ID
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, ids.shape[1])
    return first.long()


class CountLikelihood(ValueLikelihood):
    """Base of the count likelihoods: a non-negative mean from the decoder through a link."""

    kinds = frozenset({"counts"})
    num_params = 1
    support = constraints.nonnegative_integer
    LINKS = ("exp", "softplus")

    def __init__(self, data: DataSpec, link: str = "exp") -> None:
        super().__init__(data)
        if link not in self.LINKS:
            raise ValueError(
                f"parameter 'link' must be one of {', '.join(self.LINKS)}, got {link!r}"
            )
        self.link = link

    def log_mean(self, params: Tensor) -> Tensor:
        """log of the mean count, ``(B, *data.shape)``."""
        (raw,) = self._maps(params)
        if self.link == "exp":
            return raw.clamp(-LOG_RATE_BOUND, LOG_RATE_BOUND)
        return torch.log(F.softplus(raw) + 1e-8)

    def mean(self, params: Tensor) -> Tensor:
        return self.log_mean(params).exp()


@registry.likelihoods.register("poisson")
class PoissonLikelihood(CountLikelihood):
    """Poisson counts with rate ``link(decoder output)``."""

    def log_prob(self, params: Tensor, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        self._maps(params, x)
        log_rate = self.log_mean(params)
        x = x.to(log_rate.dtype)
        return _per_example(x * log_rate - log_rate.exp() - torch.lgamma(x + 1))

    def sample(self, params: Tensor) -> Tensor:
        return torch.poisson(self.mean(params))


@registry.likelihoods.register("negative_binomial")
class NegativeBinomialLikelihood(CountLikelihood):
    """Negative binomial (gamma-Poisson) counts with mean ``mu = link(decoder output)`` and a
    learnable inverse dispersion ``theta`` per feature: variance ``mu + mu^2 / theta``."""

    def __init__(self, data: DataSpec, link: str = "exp", theta: float = 1.0) -> None:
        super().__init__(data, link=link)
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0:
            raise ValueError(f"parameter 'theta' must be a positive number, got {theta!r}")
        self.log_theta = nn.Parameter(torch.full(data.shape, math.log(theta)))

    @property
    def theta(self) -> Tensor:
        return self.log_theta.exp()

    def log_prob(self, params: Tensor, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        self._maps(params, x)
        log_mu = self.log_mean(params)
        x = x.to(log_mu.dtype)
        log_theta = self.log_theta.to(log_mu.dtype)
        theta = log_theta.exp()
        log_total = torch.logaddexp(log_theta, log_mu)  # log(theta + mu)
        values = (
            torch.lgamma(x + theta)
            - torch.lgamma(theta)
            - torch.lgamma(x + 1)
            + theta * (log_theta - log_total)
            + x * (log_mu - log_total)
        )
        return _per_example(values)

    def sample(self, params: Tensor) -> Tensor:
        log_mu = self.log_mean(params)
        nb = torch.distributions.NegativeBinomial(
            total_count=self.theta.expand_as(log_mu),
            logits=log_mu - self.log_theta,
            validate_args=False,
        )
        return nb.sample()
