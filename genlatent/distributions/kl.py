"""A KL divergence that works for any posterior / prior pair.

:func:`kl_divergence` uses a closed form when one is registered for the pair of distribution
types, through torch's KL registry (which pyro extends, e.g. for ``Independent`` wrappers
with different event dimensions); otherwise it returns an unbiased Monte-Carlo estimate,
``mean_s [log q(z_s) - log p(z_s)]`` with reparameterised draws ``z_s ~ q``, so the
gradient reaches the parameters of both q and p.

Register a closed form for a new pair with :func:`register_kl` (torch's decorator)::

    @register_kl(MyPosterior, MyPrior)
    def _kl_mine(q, p): ...

Which method a pair uses is logged once per pair (logger ``genlatent.distributions.kl``) and
reported by :func:`kl_method`; models put it in their metrics.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent
from torch.distributions import kl as torch_kl
from torch.distributions.kl import register_kl

__all__ = [
    "kl_divergence",
    "kl_divergence_and_method",
    "kl_method",
    "monte_carlo_kl",
    "register_kl",
    "rsample_with_log_prob",
]

log = logging.getLogger(__name__)

KLMethod = Literal["analytic", "monte_carlo"]
# Pairs found, at run time, to lack a usable closed form (the registry promised one but the
# registered function raised NotImplementedError, e.g. for unsupported inner families).
_no_closed_form: set[tuple[object, object]] = set()
_logged: set[tuple[object, object]] = set()


def _signature(d: Distribution) -> object:
    """The part of a distribution that decides which KL function applies."""
    if isinstance(d, Independent):
        return (Independent, d.reinterpreted_batch_ndims, _signature(d.base_dist))
    return type(d)


def _registered(q: Distribution, p: Distribution) -> bool:
    """Whether torch's registry has a closed form for ``(q, p)``, looking inside Independents
    the way pyro's ``(Independent, Independent)`` rule does."""
    if isinstance(q, Independent) and isinstance(p, Independent):
        shared = min(q.reinterpreted_batch_ndims, p.reinterpreted_batch_ndims)
        q_nd = q.reinterpreted_batch_ndims - shared
        p_nd = p.reinterpreted_batch_ndims - shared
        inner_q = Independent(q.base_dist, q_nd) if q_nd else q.base_dist
        inner_p = Independent(p.base_dist, p_nd) if p_nd else p.base_dist
        return _registered(inner_q, inner_p)
    return torch_kl._dispatch_kl(type(q), type(p)) is not NotImplemented


def kl_method(q: Distribution, p: Distribution) -> KLMethod:
    """``"analytic"`` if a closed form is registered for the pair, else ``"monte_carlo"``."""
    key = (_signature(q), _signature(p))
    if key in _no_closed_form or not _registered(q, p):
        return "monte_carlo"
    return "analytic"


def _log_choice(q: Distribution, p: Distribution, method: str) -> None:
    key = (_signature(q), _signature(p), method)
    if key not in _logged:
        _logged.add(key)
        log.info("KL(%s || %s): %s", _name(q), _name(p), method.replace("_", "-"))


def _name(d: Distribution) -> str:
    if isinstance(d, Independent):
        return f"Independent({_name(d.base_dist)}, {d.reinterpreted_batch_ndims})"
    return type(d).__name__


def monte_carlo_kl(q: Distribution, p: Distribution, num_samples: int = 1) -> Tensor:
    """Unbiased estimate of KL(q || p) from ``num_samples`` reparameterised draws of q.

    All draws are made and scored in one batched call; the result has q's batch shape.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not q.has_rsample:
        raise ValueError(
            f"Monte-Carlo KL needs a reparameterisable q; {_name(q)} has no rsample"
        )
    z, log_q = rsample_with_log_prob(q, (num_samples,))
    return (log_q - p.log_prob(z)).mean(0)


def rsample_with_log_prob(
    q: Distribution, sample_shape: tuple[int, ...] = ()
) -> tuple[Tensor, Tensor]:
    """Reparameterised draws of q and their log densities, ``(z, log q(z))``.

    A distribution with its own ``rsample_with_log_prob`` (the flow posteriors of
    :mod:`genlatent.distributions.flows`) scores its draws in the forward pass; inverting an
    autoregressive flow to score an arbitrary z takes one network pass per latent dimension.
    Every other distribution draws, then scores.
    """
    method = getattr(q, "rsample_with_log_prob", None)
    if callable(method):
        return method(sample_shape)
    z = q.rsample(sample_shape)
    return z, q.log_prob(z)


def kl_divergence_and_method(
    q: Distribution, p: Distribution, num_samples: int = 1
) -> tuple[Tensor, KLMethod]:
    """:func:`kl_divergence` and the method it actually used (a registered closed form that
    raises falls back to Monte-Carlo), decided once."""
    method = kl_method(q, p)
    if method == "analytic":
        try:
            kl = torch_kl.kl_divergence(q, p)
        except NotImplementedError:
            _no_closed_form.add((_signature(q), _signature(p)))
            method = "monte_carlo"
        else:
            _log_choice(q, p, method)
            return kl, method
    _log_choice(q, p, method)
    return monte_carlo_kl(q, p, num_samples), method


def kl_divergence(q: Distribution, p: Distribution, num_samples: int = 1) -> Tensor:
    """KL(q || p) with q's batch shape: closed form when registered, else Monte-Carlo.

    ``num_samples`` is the number of draws of the Monte-Carlo estimate (unused by closed
    forms). The method is logged once per pair of types; see :func:`kl_method`.
    """
    return kl_divergence_and_method(q, p, num_samples)[0]


def _standard_normal_kl(loc: Tensor, scale: Tensor) -> Tensor:
    """The seed's formula, ``1/2 sum_k (sigma_k^2 + mu_k^2 - 1 - 2 ln sigma_k)`` (for tests
    and documentation; :func:`kl_divergence` gets the same value from torch's registry)."""
    return 0.5 * (scale.pow(2) + loc.pow(2) - 1 - 2 * torch.log(scale)).sum(-1)
