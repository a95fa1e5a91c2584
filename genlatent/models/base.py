"""The user-facing model: parts plus an objective, and the methods users call.

Concrete models (``AE``, ``VAE``) are registered in ``registry.models`` and built from a spec
by :func:`genlatent.build`. The trainer only relies on :meth:`LatentModel.loss`.

Batches are dicts: ``{"x": Tensor, "lengths": LongTensor (token data only), ...}``.
Every loss is per example (summed over data dimensions, in nats) and averaged over the batch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..data.spec import DataSpec
from ..parts import Decoder, Encoder, Likelihood, Posterior, Prior


class LatentModel(nn.Module):
    """Base class of AE / VAE: holds the parts, the spec and save/load."""

    uses_posterior: ClassVar[bool] = True

    def __init__(
        self,
        *,
        data: DataSpec,
        latent_dim: int,
        encoder: Encoder,
        decoder: Decoder,
        likelihood: Likelihood,
        posterior: Posterior | None = None,
        prior: Prior | None = None,
    ) -> None:
        super().__init__()
        self.data = data
        self.latent_dim = latent_dim
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.posterior = posterior
        self.prior = prior
        self.spec: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        """Device of the model's first parameter (CPU for a parameter-less model)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def loss(
        self, batch: dict[str, Tensor], step: int | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Scalar training loss and detached per-batch metrics (means over the batch).

        ``step`` is the global optimiser step, used by schedules such as KL warm-up.
        Metrics always include ``loss`` and ``reconstruction``; VAEs add ``kl`` and
        ``neg_elbo``.
        """
        raise NotImplementedError

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write spec, weights and provenance to ``directory`` (atomically)."""
        from ..serialization import save_model

        return save_model(self, directory)
