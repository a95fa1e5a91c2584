"""The deterministic autoencoder of the seed: loss = -log p(x | z) with z = encoder(x).

With the Bernoulli likelihood that loss is the cross-entropy between the input and its
reconstruction, summed over data values and averaged over the batch.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from .. import registry
from ..dataspec import DataSpec
from ..errors import SpecError
from ..parts import Decoder, Encoder, Likelihood, Posterior, Prior
from .base import LatentModel


@registry.models.register("ae")
class AE(LatentModel):
    """Encoder -> code z -> decoder -> likelihood; no posterior, prior or KL."""

    uses_posterior: ClassVar[bool] = False

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
        super().__init__(
            data=data,
            latent_dim=latent_dim,
            encoder=encoder,
            decoder=decoder,
            likelihood=likelihood,
            posterior=None,
            prior=None,
        )

    def encode(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> Tensor:
        """The code of each example, ``(B, latent_dim)``."""
        return self.encoder_output(x, lengths, condition)

    encode_mean = encode

    def objective(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        step: int | None = None,
        condition: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        z = self.encode(x, lengths, condition)
        reconstruction = self.reconstruction_nll(z, x, lengths, condition)
        return reconstruction, {"reconstruction": reconstruction}

    def sample(self, n: int, temperature: float = 1.0, **_: object) -> Tensor:
        """An AE has no prior to sample codes from."""
        raise SpecError("model 'ae' has no prior to sample from; train a 'vae' to sample")
