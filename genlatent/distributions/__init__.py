"""Priors, posteriors, likelihoods and the general KL divergence.

Importing this package registers the built-in parts (``registry.priors``,
``registry.posteriors``, ``registry.likelihoods``).
"""

from __future__ import annotations

from . import kl, likelihoods, posteriors, priors
from .kl import kl_divergence, kl_method, monte_carlo_kl, register_kl
from .likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
    NegativeBinomialLikelihood,
    PoissonLikelihood,
)
from .posteriors import LaplacePosterior, NormalPosterior
from .priors import LaplacePrior, MixturePrior, StandardNormalPrior

__all__ = [
    "kl",
    "likelihoods",
    "posteriors",
    "priors",
    "kl_divergence",
    "kl_method",
    "monte_carlo_kl",
    "register_kl",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "GaussianLikelihood",
    "NegativeBinomialLikelihood",
    "PoissonLikelihood",
    "LaplacePosterior",
    "NormalPosterior",
    "LaplacePrior",
    "MixturePrior",
    "StandardNormalPrior",
]
