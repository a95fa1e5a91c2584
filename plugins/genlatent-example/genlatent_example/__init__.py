"""Example genlatent plugin: a prior, a likelihood, linear networks, a callback, a reader."""

from __future__ import annotations

__version__ = "0.1.0"


def register() -> None:
    """Called once by genlatent (entry point ``genlatent.plugins``) on the first registry
    lookup; every part added here is recorded as provided by this package."""
    from genlatent import registry

    from .npy_folder import NpyFolder
    from .parts import (
        ContinuousBernoulliLikelihood,
        LatentStats,
        LinearDecoder,
        LinearEncoder,
        StudentTPrior,
    )

    registry.priors.add("student_t", StudentTPrior)
    registry.likelihoods.add("continuous_bernoulli", ContinuousBernoulliLikelihood)
    registry.encoders.add("linear", LinearEncoder)
    registry.decoders.add("linear", LinearDecoder)
    registry.callbacks.add("latent_stats", LatentStats)
    registry.datasets.add("npy_folder", NpyFolder)
