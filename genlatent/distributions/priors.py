"""Priors p(z): standard normal, Laplace, mixture of Gaussians, VampPrior.

Each prior is an ``nn.Module`` whose ``forward()`` returns a fresh ``pyro.distributions``
object with batch shape ``()`` and event shape ``(latent_dim,)``. Fixed values live in
buffers and learnable ones in parameters, so ``model.to(device)`` moves them and the trainer
optimises them with the rest of the model. Distributions skip argument validation (a
host-device sync per call on a GPU); the parameters are positive by construction.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal
from torch.nn import functional as F

from .. import registry
from ..errors import SpecError
from ..parts import Prior
from ._checks import check_positive, check_positive_int

MIN_SCALE = 1e-4


def _positive(raw: Tensor) -> Tensor:
    """Softplus, floored at ``MIN_SCALE``: the map from free parameters to scales."""
    return F.softplus(raw) + MIN_SCALE


def _unpositive(value: float) -> float:
    """Inverse of :func:`_positive` for initial values."""
    v = torch.tensor(float(value) - MIN_SCALE)
    return float(v + torch.log(-torch.expm1(-v)))


@registry.priors.register("standard_normal")
class StandardNormalPrior(Prior):
    """N(0, I), the seed's prior; no parameters."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        # Non-persistent buffers: they follow .to(device) but are not saved.
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)
        self.register_buffer("scale", torch.ones(latent_dim), persistent=False)

    def forward(self) -> dist.Distribution:
        return dist.Normal(self.loc, self.scale, validate_args=False).to_event(1)


@registry.priors.register("laplace")
class LaplacePrior(Prior):
    """Laplace(0, b) per dimension: sparser codes than a normal prior.

    ``scale`` is b (or its initial value); with ``learn_scale=True`` each dimension learns its
    own b (kept positive through a softplus).
    """

    def __init__(self, latent_dim: int, scale: float = 1.0, learn_scale: bool = False) -> None:
        super().__init__(latent_dim)
        scale = check_positive("scale", scale)
        self.learn_scale = bool(learn_scale)
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)
        if self.learn_scale:
            self.raw_scale = nn.Parameter(torch.full((latent_dim,), _unpositive(scale)))
        else:
            self.register_buffer("fixed_scale", torch.full((latent_dim,), scale), persistent=False)

    @property
    def scale(self) -> Tensor:
        return _positive(self.raw_scale) if self.learn_scale else self.fixed_scale

    def forward(self) -> dist.Distribution:
        return dist.Laplace(self.loc, self.scale, validate_args=False).to_event(1)


@registry.priors.register("mixture")
class MixturePrior(Prior):
    """Mixture of ``components`` diagonal Gaussians with learnable means, scales and weights.

    Means start drawn from N(0, ``spread``^2) with torch's RNG (seed it for reproducible
    models); scales start at ``scale``; weights start uniform. There is no closed-form KL to a
    mixture, so a VAE with this prior uses the Monte-Carlo estimate.

    Why ``spread`` is 0.5 (it was 2.0 until issue 16): the encoder's first codes sit near the
    origin, and with means 2 standard deviations apart in every dimension the component nearest
    the origin takes every code; the others never get a responsibility, their weights decay
    and, at Adam's step of about ``lr`` per update, their means cannot travel the ~8 units to
    the data within a training run. The mixture collapses to one Gaussian (measured on
    Fashion-MNIST: 1 of 10 components used, means moved 0.4). Overlapping starting components
    all see codes and split them (10 of 10 used; 1.9 nats better NLL after 2 epochs, see
    BENCHMARKS.md). Saved models record their ``spread`` and keep it.
    """

    def __init__(
        self,
        latent_dim: int,
        components: int = 10,
        spread: float = 0.5,
        scale: float = 1.0,
        learn_weights: bool = True,
    ) -> None:
        super().__init__(latent_dim)
        check_positive_int("components", components)
        spread = check_positive("spread", spread)
        scale = check_positive("scale", scale)
        self.components = components
        self.means = nn.Parameter(torch.randn(components, latent_dim) * spread)
        self.raw_scales = nn.Parameter(torch.full((components, latent_dim), _unpositive(scale)))
        logits = torch.zeros(components)
        if learn_weights:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits, persistent=False)

    @property
    def scales(self) -> Tensor:
        return _positive(self.raw_scales)

    @property
    def weights(self) -> Tensor:
        return torch.softmax(self.logits, dim=-1)

    def forward(self) -> dist.Distribution:
        components = dist.Normal(self.means, self.scales, validate_args=False).to_event(1)
        weights = dist.Categorical(logits=self.logits, validate_args=False)
        return dist.MixtureSameFamily(weights, components, validate_args=False)


#: How a VampPrior keeps its pseudo-inputs inside the likelihood's support.
LINKS = ("auto", "clip", "sigmoid", "softplus", "identity")
#: The pseudo-inputs' starting (mean, std) before the link, by link, when not given.
INIT = {"clip": (0.05, 0.01), "other": (0.0, 1.0)}


def _auto_link(likelihood: Any) -> str:
    """``clip`` for data in [0, 1] (Bernoulli), ``softplus`` for non-negative data
    (counts), ``identity`` otherwise."""
    from torch.distributions import constraints

    support = getattr(likelihood, "support", None)
    if support is constraints.unit_interval:
        return "clip"
    if support is not None and support in (
        constraints.nonnegative,
        constraints.nonnegative_integer,
        constraints.positive,
    ):
        return "softplus"
    return "identity"


@registry.priors.register("vamp")
class VampPrior(Prior):
    """VampPrior (Tomczak & Welling 2018): ``p(z) = 1/K sum_k q(z | u_k)``, the mixture of the
    model's own posteriors at ``components`` (K) learned pseudo-inputs ``u_k``.

    The pseudo-inputs live in the data space (one example's shape) as free parameters mapped
    through ``link``: ``"clip"`` clamps them to [0, 1] (data in [0, 1], e.g. Bernoulli),
    ``"sigmoid"`` squashes them into it, ``"softplus"`` keeps them non-negative (count data),
    ``"identity"`` leaves them free; ``"auto"`` picks by the likelihood's support and the
    saved spec records the choice. They start as ``link(N(init_mean, init_std^2))``; unset,
    these are (0.05, 0.01) for ``clip`` (near-black images, Tomczak & Welling's start) and
    (0, 1) otherwise. Token data have no continuous input space for pseudo-inputs and are
    refused.

    Why ``clip`` for [0, 1] data (``sigmoid`` until issue 16): Adam moves a parameter by
    about ``lr`` per step, and through a sigmoid that is at most ``lr / 4`` in the data
    space, so in a 10-epoch run the pseudo-inputs barely leave their grey start; clamped,
    they move at ``lr`` in the data itself (as pythae's hardtanh pseudo-inputs do).
    Measured on Fashion-MNIST (benchmarks/fashion_mnist_nll.py, 2000 test images): test NLL
    235.77 with ``clip`` from near black, 235.96 from grey, 236.22 with ``sigmoid``. Saved
    models record their link and starting values and keep them.

    The prior is made from the encoder and posterior (``needs_encoder``): the model calls
    :meth:`attach` once after it is built; the encoder stays the model's one submodule. There is
    no closed-form KL to this mixture: the VAE uses the Monte-Carlo KL. Each ``forward`` encodes
    the K pseudo-inputs (about the cost of encoding a batch of K examples).
    """

    needs_encoder: ClassVar[bool] = True

    def __init__(
        self,
        latent_dim: int,
        components: int = 500,
        link: str = "auto",
        init_std: float | None = None,
        init_mean: float | None = None,
    ) -> None:
        super().__init__(latent_dim)
        check_positive_int("components", components)
        if link not in LINKS:
            raise ValueError(f"parameter 'link' must be one of {', '.join(LINKS)}, got {link!r}")
        self.components = components
        self.link = link
        self.init_std = None if init_std is None else check_positive("init_std", init_std)
        if init_mean is not None and (
            isinstance(init_mean, bool) or not isinstance(init_mean, (int, float))
        ):
            raise ValueError(f"parameter 'init_mean' must be a number, got {init_mean!r}")
        self.init_mean = None if init_mean is None else float(init_mean)
        self._host: tuple[Any, ...] = ()  # the model, unregistered (see Prior.attach)

    def attach(self, model: nn.Module) -> None:
        data = model.data
        if data.kind == "tokens":
            raise SpecError(
                "prior 'vamp' needs pseudo-inputs in the data space; token data have none "
                "(use prior 'standard_normal', 'laplace' or 'mixture')"
            )
        if self.link == "auto":
            self.link = _auto_link(model.likelihood)
        start_mean, start_std = INIT.get(self.link, INIT["other"])
        self.init_mean = start_mean if self.init_mean is None else self.init_mean
        self.init_std = start_std if self.init_std is None else self.init_std
        shape = (self.components, *data.shape)
        self.raw_inputs = nn.Parameter(self.init_mean + torch.randn(shape) * self.init_std)
        self._host = (model,)

    def resolved_params(self) -> dict[str, Any]:
        return {
            **super().resolved_params(),
            "link": self.link,
            "init_std": self.init_std,
            "init_mean": self.init_mean,
        }

    @property
    def pseudo_inputs(self) -> Tensor:
        """The K pseudo-inputs in the data space, ``(K, *data.shape)``."""
        raw = self.raw_inputs
        if self.link == "sigmoid":
            return torch.sigmoid(raw)
        if self.link == "clip":
            return raw.clamp(0.0, 1.0)
        if self.link == "softplus":
            return F.softplus(raw)
        return raw

    def posteriors(self, index: Tensor | None = None) -> dist.Distribution:
        """q(z | u_k) for the pseudo-inputs ``index`` (all K if None): batch ``(len,)``."""
        if not self._host:
            raise RuntimeError("VampPrior is used before a model attached it (Prior.attach)")
        model = self._host[0]
        u = self.pseudo_inputs if index is None else self.pseudo_inputs[index]
        return model.posterior(model.encoder(u))

    def forward(self) -> dist.Distribution:
        weights = dist.Categorical(
            logits=self.raw_inputs.new_zeros(self.components), validate_args=False
        )
        return _VampMixture(weights, self.posteriors(), self)


class _VampMixture(dist.MixtureSameFamily):
    """The VampPrior's mixture; ``sample`` picks a pseudo-input per draw and samples its
    posterior (a plain mixture would draw from all K components for every sample)."""

    def __init__(self, weights: dist.Categorical, components: dist.Distribution, prior: VampPrior):
        super().__init__(weights, components, validate_args=False)
        self._prior = prior

    def log_prob(self, value: Tensor) -> Tensor:
        """For diagonal-normal components, the K log densities of each z come from two
        matrix products (in float64, so expanding the square loses nothing) instead of a
        ``(..., K, latent_dim)`` broadcast: the IWAE evaluation scores millions of z."""
        comp = self.component_distribution
        normal = isinstance(comp, Independent) and type(comp.base_dist) in (dist.Normal, Normal)
        if not (normal and comp.reinterpreted_batch_ndims == 1):
            return super().log_prob(value)
        loc, scale = comp.base_dist.loc.double(), comp.base_dist.scale.double()  # (K, D)
        z = value.reshape(-1, value.shape[-1]).double()
        precision = scale.pow(-2)
        quad = (
            z.pow(2) @ precision.T
            - 2 * z @ (loc * precision).T
            + (loc.pow(2) * precision).sum(-1)
        )  # (N, K): sum_d (z_d - loc_kd)^2 / scale_kd^2
        log_norm = scale.log().sum(-1) + 0.5 * value.shape[-1] * math.log(2 * math.pi)
        log_w = torch.log_softmax(self.mixture_distribution.logits.double(), -1)
        out = torch.logsumexp(log_w - 0.5 * quad - log_norm, dim=-1)
        return out.to(value.dtype).reshape(value.shape[:-1])

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> Tensor:
        shape = torch.Size(sample_shape)
        with torch.no_grad():
            index = self.mixture_distribution.sample(shape).reshape(-1)
            z = self._prior.posteriors(index).sample()
        return z.reshape(*shape, *self.event_shape)
