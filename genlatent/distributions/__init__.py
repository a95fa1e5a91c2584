"""Priors, posteriors, likelihoods and the general KL divergence.

Importing this package registers the built-in parts (``registry.priors``,
``registry.posteriors``, ``registry.likelihoods``).
"""

from __future__ import annotations

from . import conditional_priors, flows, kl, likelihoods, posteriors, priors
from .conditional_priors import ConditionalMixturePrior
from .flows import FlowDistribution, IAFPosterior, SplinePosterior
from .kl import kl_divergence, kl_method, monte_carlo_kl, register_kl, rsample_with_log_prob
from .likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
    NegativeBinomialLikelihood,
    PoissonLikelihood,
)
from .posteriors import LaplacePosterior, NormalPosterior
from .priors import LaplacePrior, MixturePrior, StandardNormalPrior, VampPrior

__all__ = [
    "conditional_priors",
    "flows",
    "kl",
    "likelihoods",
    "posteriors",
    "priors",
    "kl_divergence",
    "kl_method",
    "monte_carlo_kl",
    "register_kl",
    "rsample_with_log_prob",
    "FlowDistribution",
    "IAFPosterior",
    "SplinePosterior",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "GaussianLikelihood",
    "NegativeBinomialLikelihood",
    "PoissonLikelihood",
    "LaplacePosterior",
    "NormalPosterior",
    "ConditionalMixturePrior",
    "LaplacePrior",
    "MixturePrior",
    "StandardNormalPrior",
    "VampPrior",
]
