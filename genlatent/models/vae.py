"""The variational autoencoder: ELBO with a beta-weighted, warmed-up KL, and the IWAE bound.

Per example (nats, summed over data dimensions)::

    reconstruction = -log p(x | z),  z ~ q(z | x) (one reparameterised draw)
    kl             = KL(q(z | x) || p(z))  (closed form, or Monte-Carlo with kl_samples draws)
    neg_elbo       = reconstruction + kl
    loss           = reconstruction + kl_weight(step) * kl

``kl_weight`` rises linearly from 0 at step 0 to ``beta`` at ``kl_warmup_steps`` (at once if
``kl_warmup_steps == 0``; ``beta`` when no step is given, as in evaluation).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution

from .. import registry
from ..dataspec import DataSpec
from ..distributions.kl import kl_divergence_and_method, kl_method
from ..errors import SpecError
from ..parts import Decoder, Encoder, Likelihood, Posterior, Prior
from .base import LatentModel


def _check_number(name: str, value: object, minimum: float, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value >= minimum:
        what = "an integer" if integer else "a number"
        raise SpecError(f"objective {name!r} must be {what} >= {minimum}, got {value!r}")


@registry.models.register("vae")
class VAE(LatentModel):
    """Encoder -> q(z|x) -> z -> decoder -> p(x|z), with prior p(z).

    Objective parameters: ``beta`` (KL weight, 1 = the ELBO), ``kl_warmup_steps`` (linear
    warm-up of the KL weight from 0 to ``beta``), ``kl_samples`` (draws of the Monte-Carlo
    KL, used only when the posterior / prior pair has no closed form).
    """

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
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        kl_samples: int = 1,
    ) -> None:
        if posterior is None or prior is None:
            raise SpecError("model 'vae' needs a posterior and a prior")
        _check_number("beta", beta, 0)
        _check_number("kl_warmup_steps", kl_warmup_steps, 0, integer=True)
        _check_number("kl_samples", kl_samples, 1, integer=True)
        super().__init__(
            data=data,
            latent_dim=latent_dim,
            encoder=encoder,
            decoder=decoder,
            likelihood=likelihood,
            posterior=posterior,
            prior=prior,
        )
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.kl_samples = int(kl_samples)
        self._last_kl_method = "analytic"

    # ------------------------------------------------------------------ pieces

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Distribution:
        """q(z | x): batch ``(B,)``, event ``(latent_dim,)``; see also :meth:`encode_mean`."""
        return self.posterior(self.encoder(x, lengths=lengths))

    def encode_mean(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The posterior mean of each example, ``(B, latent_dim)``."""
        return self.encode(x, lengths).mean

    @property
    def kl_method(self) -> str:
        """``"analytic"`` or ``"monte_carlo"``: how this posterior / prior pair's KL is got."""
        flat = torch.zeros(1, self.posterior.num_params * self.latent_dim, device=self.device)
        return kl_method(self.posterior(flat), self.prior())

    def kl_weight(self, step: int | None = None) -> float:
        """The KL weight at optimiser step ``step`` (``beta`` once warmed up or if None)."""
        if step is None or self.kl_warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, max(0, step) / self.kl_warmup_steps)

    # ------------------------------------------------------------------ objectives

    def elbo(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Per-example ``reconstruction``, ``kl``, ``neg_elbo`` and ``elbo`` (nats, ``(B,)``).

        One reparameterised draw of z; the KL is exact or a ``kl_samples``-draw estimate.
        """
        q = self.encode(x, lengths)
        p = self.prior()
        reconstruction = self.reconstruction_nll(q.rsample(), x, lengths)
        kl, self._last_kl_method = kl_divergence_and_method(q, p, num_samples=self.kl_samples)
        neg_elbo = reconstruction + kl
        return {"reconstruction": reconstruction, "kl": kl, "neg_elbo": neg_elbo, "elbo": -neg_elbo}

    def objective(
        self, x: Tensor, lengths: Tensor | None = None, step: int | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        terms = self.elbo(x, lengths)
        weight = self.kl_weight(step)
        loss = terms["reconstruction"] + weight * terms["kl"]
        kl = terms["kl"]
        analytic = 1.0 if self._last_kl_method == "analytic" else 0.0
        return loss, {
            "reconstruction": terms["reconstruction"],
            "kl": kl,
            "neg_elbo": terms["neg_elbo"],
            # made on the loss's device (a fill, no host-to-device copy)
            "kl_weight": kl.new_full((), weight),
            "kl_analytic": kl.new_full((), analytic),
        }

    def iwae_bound(
        self, x: Tensor, k: int, lengths: Tensor | None = None, batch_k: int | None = 16
    ) -> Tensor:
        """Importance-weighted lower bound on log p(x) with ``k`` samples, per example ``(B,)``.

        ``log (1/k) sum_i p(x, z_i) / q(z_i | x)``, computed with log-sum-exp. It equals the
        ELBO in expectation for ``k = 1`` and rises towards log p(x) as ``k`` grows. Samples
        are decoded ``batch_k`` at a time (``None``: all at once) to bound memory. Wrap in
        ``torch.no_grad()`` for evaluation.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        chunk = k if batch_k is None else max(1, min(int(batch_k), k))
        q = self.encode(x, lengths)
        p = self.prior()
        batch = x.shape[0]
        log_weights = []
        for start in range(0, k, chunk):
            c = min(chunk, k - start)
            z = q.rsample((c,))  # (c, B, D)
            x_rep = x.unsqueeze(0).expand(c, *x.shape).reshape(c * batch, *x.shape[1:])
            len_rep = None if lengths is None else lengths.repeat(c)
            log_px = -self.reconstruction_nll(z.reshape(c * batch, -1), x_rep, len_rep)
            log_weights.append(log_px.view(c, batch) + p.log_prob(z) - q.log_prob(z))
        return torch.logsumexp(torch.cat(log_weights, 0), dim=0) - math.log(k)

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, mean: bool = True
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``n`` new examples from codes drawn from the prior.

        Non-token data: the likelihood's mean (or a draw if ``mean=False``), ``(n, *shape)``.
        Token data: ``(ids, lengths)`` sampled at ``temperature`` (0: greedy).
        """
        z = self.prior.sample(n).to(self.device)
        if self.data.kind == "tokens":
            return self.generate_from(z, temperature=temperature, mean=temperature == 0)
        return self.generate_from(z, mean=mean)
