"""The variational autoencoder: ELBO with a beta-weighted, warmed-up KL, and the IWAE bound.

Per example (nats, summed over data dimensions)::

    reconstruction = -log p(x | z),  z ~ q(z | x) (one reparameterised draw)
    kl             = KL(q(z | x) || p(z))  (closed form, or Monte-Carlo with kl_samples draws)
    neg_elbo       = reconstruction + kl
    loss           = reconstruction + kl_weight(step) * kl

``kl_weight(step)`` follows ``kl_schedule``: ``"linear"`` rises from 0 at step 0 to ``beta``
at ``kl_warmup_steps`` (at once if 0); ``"cyclical"`` (Fu et al. 2019) repeats that rise
``kl_cycles`` times (0: for ever): each cycle of ``kl_cycle_steps`` steps rises linearly over
its first ``kl_cycle_ratio`` and holds ``beta`` for the rest; after the last cycle it stays at
``beta``. Without a step (evaluation) the weight is ``beta``.

``iwae_samples`` (k, Burda et al. 2016): with k > 1 the loss is the negative importance-weighted
bound ``-log (1/k) sum_i p(x | z_i) p(z_i)^w / q(z_i | x)^w`` over k draws ``z_i ~ q`` (every
draw is decoded: k times the decoder's cost), tighter than the ELBO and equal to it for k = 1.
The KL weight ``w = kl_weight(step)`` (``beta`` and its schedule) tempers the prior-to-posterior
ratio inside each weight (w = 1: the IWAE bound itself); ``free_bits`` has no per-dimension KL to
floor there and is refused with k > 1. The metrics stay the ELBO's terms (``reconstruction``
and ``kl`` averaged over the k draws, or the closed-form KL when there is one) plus
``neg_iwae``, the negative bound with w = 1. With k = 1 (the default) the loss is the ELBO
above, with its closed-form KL where there is one.

``free_bits`` (Kingma et al. 2016) is a KL floor of that many nats per latent dimension: in the
loss each dimension's KL, averaged over the batch, counts as ``max(free_bits, KL_d)``, so the
optimiser gains nothing by pushing a dimension's KL below the floor and the decoder keeps a
reason to use z. It needs a factorised posterior and prior (``Independent``); otherwise the
floor applies to the total KL (``free_bits * latent_dim``). The reported ``kl`` and
``neg_elbo`` are always the true values.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent

from .. import registry
from ..dataspec import DataSpec
from ..distributions.kl import kl_divergence_and_method, kl_method, rsample_with_log_prob
from ..errors import SpecError
from ..parts import Decoder, Encoder, Likelihood, Posterior, Prior
from .base import LatentModel

KL_SCHEDULES = ("linear", "cyclical")

#: The objective ``genlatent train`` uses for token data (molecules) unless the config sets
#: its own keys: without a floor and a schedule an autoregressive decoder learns to ignore z
#: (posterior collapse, KL ~ 0.01 nats). Chosen by measurement on the MOSES sample
#: (docs/science.md, "Keeping z in use").
TOKEN_OBJECTIVE: dict[str, float | int | str] = {
    "free_bits": 0.5,
    "kl_schedule": "cyclical",
    "kl_cycle_steps": 100,
    "kl_cycle_ratio": 0.5,
    "kl_cycles": 4,
}


def _check_number(
    name: str, value: object, minimum: float, integer: bool = False, maximum: float | None = None
) -> None:
    kind = int if integer else (int, float)
    ok = not isinstance(value, bool) and isinstance(value, kind) and value >= minimum
    if not ok or (maximum is not None and value > maximum):
        what = "an integer" if integer else "a number"
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise SpecError(f"objective {name!r} must be {what} {bound}, got {value!r}")


@registry.models.register("vae")
class VAE(LatentModel):
    """Encoder -> q(z|x) -> z -> decoder -> p(x|z), with prior p(z).

    Objective parameters (see the module docstring): ``beta`` (KL weight, 1 = the ELBO),
    ``kl_schedule`` ("linear" or "cyclical"), ``kl_warmup_steps`` (linear warm-up of the KL
    weight from 0 to ``beta``), ``kl_cycle_steps``, ``kl_cycle_ratio``, ``kl_cycles``
    (cyclical schedule), ``free_bits`` (KL floor in nats per latent dimension, 0: off),
    ``kl_samples`` (draws of the Monte-Carlo KL, used only when the posterior / prior pair
    has no closed form), ``iwae_samples`` (k > 1: train on the k-sample importance-weighted
    bound instead of the ELBO).
    """

    # models saved before these options existed were trained without them
    legacy_defaults: ClassVar[dict[str, Any]] = {
        "kl_schedule": "linear",
        "kl_cycle_steps": 0,
        "kl_cycle_ratio": 0.5,
        "kl_cycles": 0,
        "free_bits": 0.0,
        "iwae_samples": 1,
    }

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
        kl_schedule: str = "linear",
        kl_cycle_steps: int = 0,
        kl_cycle_ratio: float = 0.5,
        kl_cycles: int = 0,
        free_bits: float = 0.0,
        kl_samples: int = 1,
        iwae_samples: int = 1,
    ) -> None:
        if posterior is None or prior is None:
            raise SpecError("model 'vae' needs a posterior and a prior")
        _check_number("beta", beta, 0)
        _check_number("kl_warmup_steps", kl_warmup_steps, 0, integer=True)
        if kl_schedule not in KL_SCHEDULES:
            raise SpecError(
                f"objective 'kl_schedule' must be one of {', '.join(KL_SCHEDULES)}, "
                f"got {kl_schedule!r}"
            )
        _check_number("kl_cycle_steps", kl_cycle_steps, 1 if kl_schedule == "cyclical" else 0,
                      integer=True)  # fmt: skip
        _check_number("kl_cycle_ratio", kl_cycle_ratio, 0, maximum=1)
        _check_number("kl_cycles", kl_cycles, 0, integer=True)
        _check_number("free_bits", free_bits, 0)
        _check_number("kl_samples", kl_samples, 1, integer=True)
        _check_number("iwae_samples", iwae_samples, 1, integer=True)
        if iwae_samples > 1 and free_bits > 0:
            raise SpecError(
                f"objective 'free_bits' ({free_bits}) has no meaning with 'iwae_samples' "
                f"({iwae_samples}) > 1: the importance-weighted bound has no per-dimension KL "
                "to floor; set one of them off"
            )
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
        self.kl_schedule = kl_schedule
        self.kl_cycle_steps = int(kl_cycle_steps)
        self.kl_cycle_ratio = float(kl_cycle_ratio)
        self.kl_cycles = int(kl_cycles)
        self.free_bits = float(free_bits)
        self.kl_samples = int(kl_samples)
        self.iwae_samples = int(iwae_samples)
        self._last_kl_method = "analytic"
        prior.attach(self)  # priors made from the encoder (VampPrior) take it now

    # ------------------------------------------------------------------ pieces

    def encode(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> Distribution:
        """q(z | x): batch ``(B,)``, event ``(latent_dim,)``; see also :meth:`encode_mean`."""
        return self.posterior(self.encoder_output(x, lengths, condition))

    def encode_mean(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> Tensor:
        """The point code of each example, ``(B, latent_dim)``: the posterior mean (a flow
        posterior: its flows applied to the base mean; see ``Posterior.point_code``)."""
        return self.posterior.point_code(self.encode(x, lengths, condition))

    @property
    def kl_method(self) -> str:
        """``"analytic"`` or ``"monte_carlo"``: how this posterior / prior pair's KL is got."""
        return kl_method(*self.reference_distributions())

    def kl_weight(self, step: int | None = None) -> float:
        """The KL weight at optimiser step ``step`` under the schedule (``beta`` if None)."""
        if step is None:
            return self.beta
        step = max(0, step)
        if self.kl_schedule == "cyclical":
            cycle, position = divmod(step, self.kl_cycle_steps)
            rise = self.kl_cycle_ratio * self.kl_cycle_steps
            if (self.kl_cycles and cycle >= self.kl_cycles) or position >= rise:
                return self.beta
            return self.beta * position / rise
        if self.kl_warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, step / self.kl_warmup_steps)

    def _kl(self, q: Distribution, p: Distribution) -> tuple[Tensor, Tensor | None]:
        """KL per example ``(B,)`` and, when free bits need it and q, p factorise, per latent
        dimension ``(B, D)`` (the total is then that tensor's sum: one KL computation)."""
        factorised = (
            self.free_bits > 0
            and isinstance(q, Independent)
            and isinstance(p, Independent)
            and q.reinterpreted_batch_ndims == p.reinterpreted_batch_ndims == 1
        )
        if factorised:
            per_dim, self._last_kl_method = kl_divergence_and_method(
                q.base_dist, p.base_dist, num_samples=self.kl_samples
            )
            per_dim = per_dim.expand(q.batch_shape + q.event_shape)
            return per_dim.sum(-1), per_dim
        kl, self._last_kl_method = kl_divergence_and_method(q, p, num_samples=self.kl_samples)
        return kl, None

    def _floored_kl(self, kl: Tensor, per_dim: Tensor | None) -> Tensor:
        """The KL term of the loss per example under free bits: each dimension whose batch-mean
        KL is below the floor counts as the floor (a constant: no gradient)."""
        if self.free_bits <= 0:
            return kl
        if per_dim is None:  # not factorised: floor the total
            floor = self.free_bits * self.latent_dim
            return kl if float(kl.detach().mean()) >= floor else torch.full_like(kl, floor)
        above = per_dim.detach().mean(0) >= self.free_bits  # (D,)
        return torch.where(above, per_dim, torch.full_like(per_dim, self.free_bits)).sum(-1)

    # ------------------------------------------------------------------ objectives

    def elbo(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Per-example ``reconstruction``, ``kl``, ``neg_elbo`` and ``elbo`` (nats, ``(B,)``).

        One reparameterised draw of z; the KL is exact or a ``kl_samples``-draw estimate.
        """
        return self._terms(x, lengths, condition)[0]

    def _terms(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> tuple[dict[str, Tensor], Tensor | None]:
        q = self.encode(x, lengths, condition)
        p = self.prior_distribution(condition, x.shape[0])
        reconstruction = self.reconstruction_nll(q.rsample(), x, lengths, condition)
        kl, per_dim = self._kl(q, p)
        neg_elbo = reconstruction + kl
        terms = {
            "reconstruction": reconstruction,
            "kl": kl,
            "neg_elbo": neg_elbo,
            "elbo": -neg_elbo,
        }
        return terms, per_dim

    def objective(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        step: int | None = None,
        condition: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if self.iwae_samples > 1:
            return self._iwae_objective(x, lengths, step, condition)
        terms, per_dim = self._terms(x, lengths, condition)
        weight = self.kl_weight(step)
        kl = terms["kl"]
        loss = terms["reconstruction"] + weight * self._floored_kl(kl, per_dim)
        analytic = 1.0 if self._last_kl_method == "analytic" else 0.0
        return loss, {
            "reconstruction": terms["reconstruction"],
            "kl": kl,
            "neg_elbo": terms["neg_elbo"],
            # made on the loss's device (a fill, no host-to-device copy)
            "kl_weight": kl.new_full((), weight),
            "kl_analytic": kl.new_full((), analytic),
        }

    def _iwae_objective(
        self, x: Tensor, lengths: Tensor | None, step: int | None, condition: Tensor | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The negative k-sample bound as the loss (see the module docstring)."""
        k = self.iwae_samples
        q = self.encode(x, lengths, condition)
        p = self.prior_distribution(condition, x.shape[0])
        log_px, log_ratio = self._importance_terms(q, p, x, lengths, k, condition)  # (k, B)
        weight = self.kl_weight(step)
        tempered = log_px + weight * log_ratio  # weight 1: the bound itself (1.0 * x is x)
        loss = math.log(k) - torch.logsumexp(tempered, dim=0)
        with torch.no_grad():
            if kl_method(q, p) == "analytic":
                kl, self._last_kl_method = kl_divergence_and_method(q, p)
            else:
                kl, self._last_kl_method = -log_ratio.mean(0), "monte_carlo"
            reconstruction = -log_px.mean(0)
            neg_iwae = math.log(k) - torch.logsumexp(log_px + log_ratio, dim=0)
        analytic = 1.0 if self._last_kl_method == "analytic" else 0.0
        return loss, {
            "reconstruction": reconstruction,
            "kl": kl,
            "neg_elbo": reconstruction + kl,
            "neg_iwae": neg_iwae,
            "kl_weight": kl.new_full((), weight),
            "kl_analytic": kl.new_full((), analytic),
        }

    def _importance_terms(
        self,
        q: Distribution,
        p: Distribution,
        x: Tensor,
        lengths: Tensor | None,
        k: int,
        condition: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``log p(x | z_i)`` and ``log p(z_i) - log q(z_i | x)`` for k draws, each ``(k, B)``.

        Each z is scored by q in the pass that drew it (flows are never inverted), and by the
        prior after that."""
        z, log_q = rsample_with_log_prob(q, (k,))  # (k, B, D), (k, B)
        batch = x.shape[0]
        x_rep = x.unsqueeze(0).expand(k, *x.shape).reshape(k * batch, *x.shape[1:])
        len_rep = None if lengths is None else lengths.repeat(k)
        cond_rep = None if condition is None else condition.repeat(k, 1)
        log_px = -self.reconstruction_nll(z.reshape(k * batch, -1), x_rep, len_rep, cond_rep)
        return log_px.view(k, batch), p.log_prob(z) - log_q

    def iwae_bound(
        self, x: Tensor, k: int, lengths: Tensor | None = None, batch_k: int | None = 16,
        condition: Tensor | None = None,
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
        q = self.encode(x, lengths, condition)
        p = self.prior_distribution(condition, x.shape[0])
        log_weights = []
        for start in range(0, k, chunk):
            log_px, log_ratio = self._importance_terms(
                q, p, x, lengths, min(chunk, k - start), condition
            )
            log_weights.append(log_px + log_ratio)
        return torch.logsumexp(torch.cat(log_weights, 0), dim=0) - math.log(k)

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, mean: bool = True,
        condition: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``n`` new examples from codes drawn from the prior.

        Non-token data: the likelihood's mean (or a draw if ``mean=False``), ``(n, *shape)``.
        Token data: ``(ids, lengths)`` sampled at ``temperature`` (0: greedy). A conditional
        model needs ``condition``: ``(n, C)``, or one ``(C,)`` vector for every sample.
        """
        z = self.sample_codes(n, condition)
        if self.data.kind == "tokens":
            return self.generate_from(
                z, temperature=temperature, mean=temperature == 0, condition=condition
            )
        return self.generate_from(z, mean=mean, condition=condition)
