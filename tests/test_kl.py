"""The general KL: the seed's closed form, closed forms against Monte-Carlo, the mixture."""

from __future__ import annotations

import logging

import pyro.distributions as dist
import pytest
import torch

import genlatent
from genlatent.distributions.kl import (
    _standard_normal_kl,
    kl_divergence,
    kl_method,
    monte_carlo_kl,
    register_kl,
)
from genlatent.distributions.posteriors import LaplacePosterior, NormalPosterior
from genlatent.distributions.priors import LaplacePrior, MixturePrior, StandardNormalPrior

D = 4


def _encoder_output(batch: int = 3, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(batch, 2 * D, dtype=dtype)


def test_normal_standard_normal_kl_is_the_seeds_formula() -> None:
    flat = _encoder_output(5, torch.float64)
    q = NormalPosterior(D)(flat)
    p = StandardNormalPrior(D).double()()
    mu, sigma = q.base_dist.loc, q.base_dist.scale
    seed = 0.5 * (sigma**2 + mu**2 - 1 - 2 * torch.log(sigma)).sum(-1)
    kl = kl_divergence(q, p)
    assert kl.shape == (5,)
    assert kl_method(q, p) == "analytic"
    torch.testing.assert_close(kl, seed, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(_standard_normal_kl(mu, sigma), seed, rtol=0, atol=0)


def test_package_exposes_kl_divergence() -> None:
    assert genlatent.kl_divergence is kl_divergence


POSTERIORS = [NormalPosterior, LaplacePosterior]
PRIORS = [
    lambda: StandardNormalPrior(D),
    lambda: LaplacePrior(D, scale=0.7),
    lambda: LaplacePrior(D, scale=1.5, learn_scale=True),
]


@pytest.mark.parametrize("posterior_cls", POSTERIORS, ids=["normal", "laplace"])
@pytest.mark.parametrize("make_prior", PRIORS, ids=["std_normal", "laplace", "laplace_learned"])
def test_closed_forms_agree_with_monte_carlo(posterior_cls, make_prior) -> None:
    flat = _encoder_output(3, torch.float64)
    q = posterior_cls(D)(flat)
    p = make_prior().double()()
    assert kl_method(q, p) == "analytic"
    exact = kl_divergence(q, p)
    n = 200_000
    z = q.sample((n,))
    draws = q.log_prob(z) - p.log_prob(z)  # (n, B)
    estimate, stderr = draws.mean(0), draws.std(0) / n**0.5
    assert torch.all((estimate - exact).abs() < 5 * stderr + 1e-6), (exact, estimate, stderr)


def _mixture_of_copies(loc: torch.Tensor, scale: torch.Tensor, k: int = 3) -> MixturePrior:
    """A mixture whose components are all N(loc, scale): it *is* that normal."""
    prior = MixturePrior(D, components=k).double()
    with torch.no_grad():
        prior.means.copy_(loc.expand(k, D))
        prior.raw_scales.copy_(torch.log(torch.expm1(scale - 1e-4)).expand(k, D))
        prior.logits.copy_(torch.randn(k))
    return prior


def test_mixture_kl_is_monte_carlo_finite_and_unbiased() -> None:
    q = NormalPosterior(D)(_encoder_output(2, torch.float64))
    loc = torch.tensor([0.5, -0.2, 0.0, 1.0], dtype=torch.float64)
    scale = torch.tensor([1.0, 0.5, 2.0, 1.2], dtype=torch.float64)
    mixture = _mixture_of_copies(loc, scale)()
    assert kl_method(q, mixture) == "monte_carlo"
    exact = kl_divergence(q, dist.Normal(loc, scale).to_event(1))
    one_draw = kl_divergence(q, mixture, num_samples=1)
    assert one_draw.shape == (2,) and torch.isfinite(one_draw).all()
    # Unbiased: the mean of many single-draw estimates is the exact KL.
    many = torch.stack([kl_divergence(q, mixture, num_samples=1) for _ in range(4000)])
    stderr = many.std(0) / len(many) ** 0.5
    assert torch.all((many.mean(0) - exact).abs() < 5 * stderr), (many.mean(0), exact)


def test_mixture_kl_gradient_reaches_the_mixture_parameters() -> None:
    prior = MixturePrior(D, components=5)
    flat = _encoder_output(6).requires_grad_(True)
    kl = kl_divergence(NormalPosterior(D)(flat), prior(), num_samples=4)
    assert torch.isfinite(kl).all()
    kl.sum().backward()
    for name in ("means", "raw_scales", "logits"):
        grad = getattr(prior, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert flat.grad is not None and flat.grad.abs().sum() > 0


def test_monte_carlo_draws_are_batched_and_averaged() -> None:
    q = NormalPosterior(D)(_encoder_output(3, torch.float64))
    p = StandardNormalPrior(D).double()()
    exact = kl_divergence(q, p)
    estimate = monte_carlo_kl(q, p, num_samples=50_000)
    assert estimate.shape == (3,)
    torch.testing.assert_close(estimate, exact, rtol=0.05, atol=0.05)
    with pytest.raises(ValueError, match="num_samples"):
        monte_carlo_kl(q, p, num_samples=0)


def test_monte_carlo_needs_reparameterised_q() -> None:
    q = dist.Poisson(torch.ones(3, D)).to_event(1)
    with pytest.raises(ValueError, match="rsample"):
        monte_carlo_kl(q, dist.Normal(torch.zeros(D), 1.0).to_event(1))


def test_choice_is_logged_once_per_pair(caplog) -> None:
    caplog.set_level(logging.INFO, logger="genlatent.distributions.kl")

    class OnceNormal(dist.Normal):  # a type no other test uses, so nothing was logged yet
        pass

    q = OnceNormal(torch.zeros(2, D), 1.0).to_event(1)
    p = MixturePrior(D, components=2)()
    for _ in range(3):
        kl_divergence(q, p)
    records = [r for r in caplog.records if "OnceNormal" in r.getMessage()]
    assert len(records) == 1
    assert "monte-carlo" in records[0].getMessage()


def test_registered_closed_form_is_used_and_failing_one_falls_back() -> None:
    class Tagged(dist.Normal):
        pass

    q = Tagged(torch.zeros(3, D), torch.ones(3, D)).to_event(1)
    p = MixturePrior(D, components=2)()
    assert kl_method(q, p) == "monte_carlo"

    @register_kl(Tagged, dist.MixtureSameFamily)
    def _kl_tagged_mixture(q_, p_):  # a stand-in closed form: -1 per element
        return torch.full(q_.batch_shape, -1.0)

    q_bare = Tagged(torch.zeros(3), torch.ones(3))
    p_bare = dist.MixtureSameFamily(
        dist.Categorical(logits=torch.zeros(3, 2)), dist.Normal(torch.zeros(3, 2), 1.0)
    )
    assert kl_method(q_bare, p_bare) == "analytic"
    torch.testing.assert_close(kl_divergence(q_bare, p_bare), torch.full((3,), -1.0))

    # pyro registers (Independent, MultivariateNormal) but raises for a Laplace base: fall back.
    q_lap = dist.Laplace(torch.zeros(3, D), 1.0).to_event(1)
    mvn = dist.MultivariateNormal(torch.zeros(D), torch.eye(D))
    assert kl_method(q_lap, mvn) == "analytic"
    kl = kl_divergence(q_lap, mvn, num_samples=8)
    assert kl.shape == (3,) and torch.isfinite(kl).all()
    assert kl_method(q_lap, mvn) == "monte_carlo"


def test_monte_carlo_gradient_is_the_closed_form_gradient_on_average() -> None:
    """Reparameterised draws make the estimate's gradient unbiased too (plain sampling
    would drop the pathwise term and get it wrong)."""
    flat = _encoder_output(2, torch.float64).requires_grad_(True)
    post, p = NormalPosterior(D), StandardNormalPrior(D).double()()
    (exact,) = torch.autograd.grad(kl_divergence(post(flat), p).sum(), flat)
    (estimate,) = torch.autograd.grad(monte_carlo_kl(post(flat), p, 100_000).sum(), flat)
    torch.testing.assert_close(estimate, exact, rtol=0.05, atol=0.03)
