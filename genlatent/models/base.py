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

from ..dataspec import DataSpec
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
        x, lengths = batch["x"], batch.get("lengths")
        per_example, terms = self.objective(x, lengths, step)
        metrics = {"loss": per_example.detach().mean()}
        for name, value in terms.items():
            value = value.detach()
            metrics[name] = value.mean() if value.dim() else value
        return per_example.mean(), metrics

    # ------------------------------------------------------------------ shared by AE and VAE

    def objective(
        self, x: Tensor, lengths: Tensor | None = None, step: int | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-example training loss ``(B,)`` and named terms (``(B,)`` or scalars)."""
        raise NotImplementedError

    def encode_mean(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """One point code per example, ``(B, latent_dim)`` (the VAE's posterior mean)."""
        raise NotImplementedError

    def decode(self, z: Tensor, x: Tensor | None = None, lengths: Tensor | None = None) -> Tensor:
        """The likelihood's parameters for codes ``z`` (``(B, num_params, *shape)``; tokens
        ``(B, V, L)``). Autoregressive decoders are teacher-forced on ``x`` when it is given."""
        if self.decoder.autoregressive:
            return self.decoder(z, x=x, lengths=lengths)
        return self.decoder(z)

    def reconstruction_nll(
        self, z: Tensor, x: Tensor, lengths: Tensor | None = None
    ) -> Tensor:
        """``-log p(x | z)`` per example in nats, summed over data dimensions: ``(B,)``."""
        return -self.likelihood.log_prob(self.decode(z, x, lengths), x, lengths)

    @torch.no_grad()
    def generate_from(
        self, z: Tensor, *, temperature: float = 1.0, mean: bool = True
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Data made from codes ``z``.

        Non-token data: the likelihood's mean (``mean=True``) or one draw from it,
        ``(B, *data.shape)``. Token data: ``(ids (B, L), lengths (B,))``; autoregressive
        decoders generate greedily when ``mean`` or ``temperature == 0``, else sample at
        ``temperature``.
        """
        if self.data.kind == "tokens" and self.decoder.autoregressive:
            greedy = mean or temperature == 0
            temperature = 1.0 if greedy else temperature
            return self.decoder.generate(z, temperature=temperature, greedy=greedy)
        params = self.decode(z)
        out = self.likelihood.mean(params) if mean else self.likelihood.sample(params)
        if self.data.kind == "tokens":
            from ..distributions.likelihoods import lengths_from_ids

            return out, lengths_from_ids(out)
        return out

    @torch.no_grad()
    def reconstruct(
        self, x: Tensor, lengths: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Decode each example's point code (see :meth:`generate_from` for the output)."""
        return self.generate_from(self.encode_mean(x, lengths), mean=True)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write spec, weights and provenance to ``directory`` (atomically)."""
        from ..serialization import save_model

        return save_model(self, directory)
