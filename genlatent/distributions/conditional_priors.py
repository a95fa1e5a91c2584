"""Priors that depend on the model's condition: p(z | c).

A conditional VAE with a fixed N(0, I) prior asks the encoder to put the codes of every
condition in the same place. When the data change their shape with the condition (Ising
configurations: one cloud of codes above Tc, two clusters, spins up and spins down, below
it), the prior cannot follow, and its draws between the clusters decode to configurations
that belong to neither. A prior whose mixture weights, means and scales are functions of c
can put its mass where the codes of each condition sit, with as many modes as they need.
"""

from __future__ import annotations

from typing import ClassVar

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from .. import registry
from ..errors import SpecError
from ..parts import Prior
from ._checks import check_positive, check_positive_int
from .priors import _positive, _unpositive


@registry.priors.register("conditional_mixture")
class ConditionalMixturePrior(Prior):
    """p(z | c): a mixture of ``components`` (K) diagonal Gaussians whose logits, means and
    scales are the output of a small MLP of the condition (one hidden layer of ``hidden``
    units, SiLU).

    Why it starts the way it does: the MLP's last layer starts with zero weights and with
    the unconditional mixture's start as its bias (means drawn from N(0, ``spread``^2),
    scales ``scale``, equal weights; see :class:`~genlatent.distributions.MixturePrior` for
    why the components must overlap at first): at step 0 p(z | c) is that mixture for every
    c, so all components see codes, and the dependence on c grows from there by gradient.

    With ``components=1`` it is a single diagonal Gaussian, ``Independent(Normal)``, so the
    KL to it has a closed form; with K > 1 the VAE uses the Monte-Carlo KL. It needs
    conditions: a model without them is refused when it is built.
    """

    takes_condition: ClassVar[bool] = True

    def __init__(
        self,
        latent_dim: int,
        condition_dim: int = 0,
        components: int = 10,
        hidden: int = 64,
        spread: float = 0.5,
        scale: float = 1.0,
    ) -> None:
        super().__init__(latent_dim)
        if not condition_dim:
            raise SpecError(
                "prior 'conditional_mixture' is p(z | c) and needs a conditional model: "
                "train with --condition COLUMN, or use prior 'mixture'"
            )
        check_positive_int("components", components)
        check_positive_int("hidden", hidden)
        spread = check_positive("spread", spread)
        scale = check_positive("scale", scale)
        self.condition_dim = int(condition_dim)
        self.components = components
        k, d = components, latent_dim
        logits = k if k > 1 else 0  # one component has no weight to learn
        self.body = nn.Sequential(nn.Linear(self.condition_dim, hidden), nn.SiLU())
        self.head = nn.Linear(hidden, logits + 2 * k * d)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.copy_(
                torch.cat([
                    torch.zeros(logits),
                    (torch.randn(k, d) * spread).reshape(-1),
                    torch.full((k * d,), _unpositive(scale)),
                ])
            )

    def mixture_at(self, condition: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
        """Logits ``(B, K)`` (None for K = 1), means and scales ``(B, K, latent_dim)`` at
        ``condition`` ``(B, condition_dim)``."""
        if condition.dim() != 2 or condition.shape[-1] != self.condition_dim:
            raise ValueError(
                f"condition must have shape (B, {self.condition_dim}), got "
                f"{list(condition.shape)}"
            )
        out = self.head(self.body(condition))
        k, d = self.components, self.latent_dim
        logits = out[:, :k] if k > 1 else None
        rest = out[:, k:] if k > 1 else out
        means = rest[:, : k * d].reshape(-1, k, d)
        scales = _positive(rest[:, k * d :]).reshape(-1, k, d)
        return logits, means, scales

    def forward(self, condition: Tensor) -> dist.Distribution:  # type: ignore[override]
        logits, means, scales = self.mixture_at(condition)
        if logits is None:
            return dist.Normal(means[:, 0], scales[:, 0], validate_args=False).to_event(1)
        parts = dist.Normal(means, scales, validate_args=False).to_event(1)
        weights = dist.Categorical(logits=logits, validate_args=False)
        return dist.MixtureSameFamily(weights, parts, validate_args=False)
