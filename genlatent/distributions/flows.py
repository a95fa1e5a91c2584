"""Flow posteriors: a diagonal normal from the encoder followed by learned bijections.

``q(z|x)`` is the distribution of ``z = f_K(... f_1(e))`` with ``e ~ N(mu(x), sigma(x)^2)``:
the encoder gives ``mu`` and ``sigma`` (as for the ``normal`` posterior) and the flows
``f_1 .. f_K`` are global (shared by every example), as in pythae's VAE_IAF, or, with
``context=True``, conditioned on a context ``h(x)`` that the encoder emits beside ``mu`` and
``sigma`` (``latent_dim`` more numbers: the posterior's ``num_params`` is 3), as in Kingma et
al.'s IAF, so the flow's shape can differ from example to example:

- ``iaf``: inverse autoregressive flows (Kingma et al. 2016), Pyro's ``AffineAutoregressive``
  in its numerically stable gated form, each with an ``AutoRegressiveNN`` (a MADE);
- ``spline``: neural spline flows (Durkan et al. 2019), Pyro's ``SplineAutoregressive``
  (monotone rational-linear splines on ``[-bound, bound]``, identity outside).

The order of the latent dimensions is reversed between flows, so each dimension is
conditioned on every other one across the stack. Drawing is one network pass per flow;
``log q(z)`` of a draw is known from the same pass (:meth:`FlowDistribution.rsample_with_log_prob`:
base log density minus the flows' log |det Jacobian|), which the VAE's ELBO, the Monte-Carlo KL
and the IWAE bound use. Scoring any other ``z`` (``log_prob``) inverts the flows, one network
pass per latent dimension and flow: correct, only slower.

No closed-form KL exists for these posteriors; :func:`genlatent.distributions.kl_divergence`
takes its Monte-Carlo path. The point code (``model.encode_mean``) is the flows applied to the
base mean, ``f_K(... f_1(mu(x)))``: a deterministic code on the flow's image of the centre of
the base normal (it is neither the mean nor the mode of q in general).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import (
    AffineAutoregressive,
    ConditionalAffineAutoregressive,
    ConditionalSplineAutoregressive,
    SplineAutoregressive,
)
from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN
from torch import Tensor, nn
from torch.distributions import Transform, constraints
from torch.distributions.utils import _sum_rightmost

from .. import registry
from ._checks import check_positive, check_positive_int
from .posteriors import LocScalePosterior


class Reverse(Transform):
    """Reverses the order of the last dimension: the permutation between two flows."""

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    sign = 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reverse)

    def _call(self, x: Tensor) -> Tensor:
        return x.flip(-1)

    def _inverse(self, y: Tensor) -> Tensor:
        return y.flip(-1)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return x.new_zeros(x.shape[:-1])


class FlowDistribution(dist.TransformedDistribution):
    """A transformed normal that scores its own draws without inverting the flows."""

    def rsample_with_log_prob(self, sample_shape: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
        """Reparameterised draws ``z`` and ``log q(z)``, both from one forward pass."""
        x = self.base_dist.rsample(torch.Size(sample_shape))
        log_q = self.base_dist.log_prob(x)
        event_dim = len(self.event_shape)
        for transform in self.transforms:
            y = transform(x)
            ladj = transform.log_abs_det_jacobian(x, y)
            log_q = log_q - _sum_rightmost(ladj, event_dim - transform.domain.event_dim)
            x = y
        return x, log_q

    @property
    def point(self) -> Tensor:
        """The flows applied to the base mean (see the module docstring)."""
        z = self.base_dist.mean
        for transform in self.transforms:
            z = transform(z)
        return z


def _hidden(value: Any) -> list[int]:
    values = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    ok = isinstance(values, (list, tuple)) and values and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
    )
    if not ok:
        raise ValueError(
            f"parameter 'hidden' must be a positive integer or a list of them, got {value!r}"
        )
    return [int(v) for v in values]


class FlowPosterior(LocScalePosterior):
    """A normal posterior followed by ``num_flows`` global flows; subclasses make one flow."""

    family = dist.Normal

    def __init__(
        self,
        latent_dim: int,
        num_flows: int = 3,
        hidden: int | Sequence[int] = (128, 128),
        min_scale: float = 1e-4,
        context: bool = False,
    ) -> None:
        super().__init__(latent_dim, min_scale=min_scale)
        if not isinstance(context, bool):
            raise ValueError(f"parameter 'context' must be true or false, got {context!r}")
        self.context = context
        self.num_params = 3 if context else 2  # loc, scale (and the context h)
        self.num_flows = check_positive_int("num_flows", num_flows)
        self.hidden = _hidden(hidden)
        self.flows = nn.ModuleList(self.make_flow() for _ in range(self.num_flows))
        self._reverse = Reverse()

    def _arn(self, param_dims: list[int] | None = None) -> nn.Module:
        """A MADE over the latent dimensions in their given order (the flow's order is set by
        the reversals between flows, so nothing is random here); with ``context``, one that
        also sees the context h (``latent_dim`` features)."""
        d = self.latent_dim
        kwargs: dict[str, Any] = {"permutation": torch.arange(d)}
        if param_dims is not None:
            kwargs["param_dims"] = param_dims
        if self.context:
            return ConditionalAutoRegressiveNN(d, d, self.hidden, **kwargs)
        return AutoRegressiveNN(d, self.hidden, **kwargs)

    def make_flow(self) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    def transforms(self, context: Tensor | None = None) -> list[Transform]:
        """The flows (conditioned on ``context`` ``(B, latent_dim)`` when the posterior has
        one) with the reversals between them."""
        out: list[Transform] = []
        for i, flow in enumerate(self.flows):
            if i:
                out.append(self._reverse)
            out.append(flow.condition(context) if self.context else flow)
        return out

    def forward(self, params: Tensor) -> FlowDistribution:
        d = self.latent_dim
        if self.context:
            if params.dim() != 2 or params.shape[-1] != 3 * d:
                raise ValueError(
                    f"{type(self).__name__} with context expects encoder output (B, {3 * d}), "
                    f"got {tuple(params.shape)}"
                )
            params, context = params[:, : 2 * d], params[:, 2 * d :]
        else:
            context = None
        loc, scale = self.split(params)
        base = dist.Normal(loc, scale, validate_args=False).to_event(1)
        return FlowDistribution(base, self.transforms(context), validate_args=False)

    def point_code(self, q: dist.Distribution) -> Tensor:
        return q.point if isinstance(q, FlowDistribution) else q.mean


@registry.posteriors.register("iaf")
class IAFPosterior(FlowPosterior):
    """Normal + inverse autoregressive flows (Kingma et al. 2016): ``num_flows`` gated affine
    autoregressive steps, each a MADE with hidden layers ``hidden``."""

    def make_flow(self) -> nn.Module:
        if self.context:
            return ConditionalAffineAutoregressive(self._arn(), stable=True)
        return AffineAutoregressive(self._arn(), stable=True)


@registry.posteriors.register("spline")
class SplinePosterior(FlowPosterior):
    """Normal + neural spline flows (Durkan et al. 2019): ``num_flows`` autoregressive
    rational-linear spline steps of ``count_bins`` bins on ``[-bound, bound]``."""

    def __init__(
        self,
        latent_dim: int,
        num_flows: int = 3,
        hidden: int | Sequence[int] = (128, 128),
        count_bins: int = 8,
        bound: float = 3.0,
        min_scale: float = 1e-4,
        context: bool = False,
    ) -> None:
        self.count_bins = check_positive_int("count_bins", count_bins)
        self.bound = check_positive("bound", bound)
        super().__init__(
            latent_dim, num_flows=num_flows, hidden=hidden, min_scale=min_scale, context=context
        )

    def make_flow(self) -> nn.Module:
        bins = self.count_bins
        # widths, heights, derivatives (bins - 1 inner knots), lambdas: Pyro's linear order
        arn = self._arn(param_dims=[bins, bins, bins - 1, bins])
        flow = ConditionalSplineAutoregressive if self.context else SplineAutoregressive
        return flow(self.latent_dim, arn, count_bins=bins, bound=self.bound, order="linear")
