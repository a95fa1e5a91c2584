"""The user-facing model: parts plus an objective, and the methods users call.

Concrete models (``AE``, ``VAE``) are registered in ``registry.models`` and built from a spec
by :func:`genlatent.build`. The trainer only relies on :meth:`LatentModel.loss`.

Batches are dicts: ``{"x": Tensor, "lengths": LongTensor (token data only), "condition":
float Tensor (B, C) (conditional models only), ...}``. A conditional model (spec field
``"condition"``, :mod:`genlatent.conditions`) takes ``condition=`` in every method that runs
the encoder or the decoder and passes it on to both networks.
Every loss is per example (summed over data dimensions, in nats) and averaged over the batch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..conditions import ConditionEncoding
from ..dataspec import DataSpec
from ..errors import SpecError
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
        #: the condition columns and their encoding (set by :func:`genlatent.build`)
        self.conditions = ConditionEncoding()

    @property
    def condition_dim(self) -> int:
        """Width of the condition vector (0: not a conditional model)."""
        conditions = getattr(self, "conditions", None)
        return conditions.dim if conditions else 0

    def check_condition(self, condition: Tensor | None, n: int) -> Tensor | None:
        """``condition`` checked against the model: ``(n, condition_dim)`` on the model's
        device (a ``(condition_dim,)`` vector is repeated for the ``n`` rows); None for an
        unconditioned model."""
        width = self.condition_dim
        if width == 0:
            if condition is not None:
                raise SpecError("this model is not conditional; it takes no condition")
            return None
        if condition is None:
            names = ", ".join(self.conditions.names)
            raise SpecError(
                f"this model is conditioned on {names}: give condition= ({n}, {width}) "
                f"(batches: 'condition')"
            )
        condition = torch.as_tensor(condition, dtype=torch.float32, device=self.device)
        if condition.dim() == 1:
            condition = condition.expand(n, -1)
        if condition.dim() != 2 or tuple(condition.shape) != (n, width):
            raise SpecError(
                f"condition has shape {list(condition.shape)}, expected [{n}, {width}] "
                f"({', '.join(self.conditions.names)})"
            )
        return condition

    def prior_distribution(self, condition: Tensor | None = None, n: int = 1) -> Distribution:
        """p(z), or p(z | c) with batch shape ``(n,)`` when the prior takes conditions
        (``Prior.takes_condition``): the one place the model asks its prior for a
        distribution, so every term sees the batch's (checked) condition."""
        if not getattr(self.prior, "takes_condition", False):
            return self.prior()
        return self.prior(self.check_condition(condition, n))

    def reference_distributions(self) -> tuple[Distribution, Distribution]:
        """q at a zero encoder output and the prior at c = 0: the pair's families, which
        decide how the KL is got, depend on neither (``kl_method``, the fit's KL line)."""
        flat = torch.zeros(1, self.posterior.num_params * self.latent_dim, device=self.device)
        zero = torch.zeros(1, self.condition_dim, device=self.device)
        return self.posterior(flat), self.prior_distribution(zero)

    def sample_codes(self, n: int, condition: Tensor | None = None) -> Tensor:
        """``n`` codes drawn from the prior, ``(n, latent_dim)`` on the model's device; a
        prior that takes conditions draws each at its row of ``condition``."""
        if self.prior is None:
            raise SpecError(f"model {self.spec.get('model')!r} has no prior to sample from")
        if not getattr(self.prior, "takes_condition", False):
            return self.prior.sample(n).to(self.device)
        return self.prior.sample(n, condition=self.check_condition(condition, n)).to(self.device)

    def encoder_output(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> Tensor:
        """The encoder's flat output, with the (checked) condition when the model has one."""
        condition = self.check_condition(condition, x.shape[0])
        if condition is None:
            return self.encoder(x, lengths=lengths)
        return self.encoder(x, lengths=lengths, condition=condition)

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
        x, lengths, condition = batch["x"], batch.get("lengths"), batch.get("condition")
        if condition is None:  # models written before conditions existed keep working
            per_example, terms = self.objective(x, lengths, step)
        else:
            per_example, terms = self.objective(x, lengths, step, condition=condition)
        metrics = {"loss": per_example.detach().mean()}
        for name, value in terms.items():
            value = value.detach()
            metrics[name] = value.mean() if value.dim() else value
        return per_example.mean(), metrics

    # ------------------------------------------------------------------ shared by AE and VAE

    def objective(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        step: int | None = None,
        condition: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-example training loss ``(B,)`` and named terms (``(B,)`` or scalars)."""
        raise NotImplementedError

    def encode_mean(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> Tensor:
        """One point code per example, ``(B, latent_dim)`` (the VAE's posterior mean)."""
        raise NotImplementedError

    def decode(
        self,
        z: Tensor,
        x: Tensor | None = None,
        lengths: Tensor | None = None,
        condition: Tensor | None = None,
    ) -> Tensor:
        """The likelihood's parameters for codes ``z`` (``(B, num_params, *shape)``; tokens
        ``(B, V, L)``). Autoregressive decoders are teacher-forced on ``x`` when it is given."""
        condition = self.check_condition(condition, z.shape[0])
        extra = {} if condition is None else {"condition": condition}
        if self.decoder.autoregressive:
            return self.decoder(z, x=x, lengths=lengths, **extra)
        return self.decoder(z, **extra)

    def reconstruction_nll(
        self, z: Tensor, x: Tensor, lengths: Tensor | None = None,
        condition: Tensor | None = None,
    ) -> Tensor:
        """``-log p(x | z)`` per example in nats, summed over data dimensions: ``(B,)``."""
        return -self.likelihood.log_prob(self.decode(z, x, lengths, condition), x, lengths)

    @torch.no_grad()
    def generate_from(
        self, z: Tensor, *, temperature: float = 1.0, mean: bool = True,
        condition: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Data made from codes ``z``.

        Non-token data: the likelihood's mean (``mean=True``) or one draw from it,
        ``(B, *data.shape)``. Token data: ``(ids (B, L), lengths (B,))``; autoregressive
        decoders generate greedily when ``mean`` or ``temperature == 0``, else sample at
        ``temperature``. ``condition``: ``(B, C)`` or one ``(C,)`` vector for every code.
        """
        condition = self.check_condition(condition, z.shape[0])
        if self.data.kind == "tokens" and self.decoder.autoregressive:
            greedy = mean or temperature == 0
            temperature = 1.0 if greedy else temperature
            extra = {} if condition is None else {"condition": condition}
            return self.decoder.generate(z, temperature=temperature, greedy=greedy, **extra)
        params = self.decode(z, condition=condition)
        out = self.likelihood.mean(params) if mean else self.likelihood.sample(params)
        if self.data.kind == "tokens":
            from ..distributions.likelihoods import lengths_from_ids

            return out, lengths_from_ids(out)
        return out

    @torch.no_grad()
    def reconstruct(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Decode each example's point code (see :meth:`generate_from` for the output)."""
        if condition is None:
            return self.generate_from(self.encode_mean(x, lengths), mean=True)
        z = self.encode_mean(x, lengths, condition=condition)
        return self.generate_from(z, mean=True, condition=condition)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write spec, weights and provenance to ``directory`` (atomically)."""
        from ..serialization import save_model

        return save_model(self, directory)
