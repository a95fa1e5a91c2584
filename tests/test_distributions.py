"""Priors, posteriors and likelihoods: shapes, values against closed forms, parameters."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch.nn import functional as F

import genlatent
from genlatent import registry
from genlatent.dataspec import DataSpec
from genlatent.distributions.likelihoods import lengths_from_ids
from genlatent.errors import SpecError

D = 3
VOCAB = ["<pad>", "<bos>", "<eos>", "<unk>", "C", "O", "N"]


def prior(name: str, **params):
    return registry.priors.get(name)(D, **params)


# ---------------------------------------------------------------- priors


@pytest.mark.parametrize(
    "name, params",
    [("standard_normal", {}), ("laplace", {}), ("laplace", {"learn_scale": True}),
     ("mixture", {"components": 4})],
)
def test_prior_shapes_sampling_and_scoring(name, params) -> None:
    p = prior(name, **params)
    d = p()
    assert d.batch_shape == () and d.event_shape == (D,)
    z = p.sample(7)
    assert z.shape == (7, D) and not z.requires_grad
    lp = p.log_prob(z)
    assert lp.shape == (7,) and torch.isfinite(lp).all()


def test_standard_normal_prior_values_and_dtype_follow_the_module() -> None:
    p = prior("standard_normal").double()
    z = torch.randn(5, D, dtype=torch.float64)
    expected = -0.5 * (z**2).sum(-1) - 0.5 * D * math.log(2 * math.pi)
    torch.testing.assert_close(p.log_prob(z), expected)
    assert p().mean.dtype == torch.float64  # buffers move with .to(...)
    assert p.state_dict() == {}  # nothing to save


def test_laplace_prior_scale_fixed_or_learned() -> None:
    fixed = prior("laplace", scale=0.5)
    assert list(fixed.parameters()) == []
    z = torch.tensor([[0.5, -1.0, 0.0]])
    expected = sum(stats.laplace(scale=0.5).logpdf(v) for v in [0.5, -1.0, 0.0])
    assert fixed.log_prob(z).item() == pytest.approx(expected, rel=1e-5)
    learned = prior("laplace", scale=0.5, learn_scale=True)
    assert learned.log_prob(z).item() == pytest.approx(expected, rel=1e-3)
    (-learned.log_prob(z)).sum().backward()
    assert learned.raw_scale.grad is not None and learned.raw_scale.grad.abs().sum() > 0


def test_mixture_prior_init_spread_seeded_and_learnable() -> None:
    torch.manual_seed(1)
    a = prior("mixture", components=8, spread=3.0)
    torch.manual_seed(1)
    b = prior("mixture", components=8, spread=3.0)
    torch.testing.assert_close(a.means, b.means)
    assert a.means.shape == (8, D)
    assert a.means.std() > 1.5  # spread out, not piled at the origin
    torch.testing.assert_close(a.weights, torch.full((8,), 1 / 8))
    torch.testing.assert_close(a.scales, torch.ones(8, D))
    names = {n for n, _ in a.named_parameters()}
    assert names == {"means", "raw_scales", "logits"}
    fixed_weights = prior("mixture", components=2, learn_weights=False)
    assert {n for n, _ in fixed_weights.named_parameters()} == {"means", "raw_scales"}


def test_mixture_log_prob_matches_a_hand_computed_mixture() -> None:
    p = prior("mixture", components=2)
    z = torch.randn(4, D)
    comp = torch.stack(
        [torch.distributions.Normal(p.means[k], p.scales[k]).log_prob(z).sum(-1) for k in range(2)]
    )
    expected = torch.logsumexp(comp + torch.log(p.weights)[:, None], 0)
    torch.testing.assert_close(p.log_prob(z), expected)


@pytest.mark.parametrize(
    "name, params, match",
    [("laplace", {"scale": 0}, "scale"), ("mixture", {"components": 0}, "components"),
     ("mixture", {"spread": -1.0}, "spread")],
)
def test_bad_prior_parameters_are_spec_errors(name, params, match) -> None:
    spec = {"data": {"kind": "vectors", "shape": [4]}, "prior": {"name": name, "params": params}}
    with pytest.raises(SpecError, match=match):
        genlatent.build(spec)


# ---------------------------------------------------------------- posteriors


@pytest.mark.parametrize("name", ["normal", "laplace"])
def test_posterior_shapes_scale_link_and_rsample(name) -> None:
    post = registry.posteriors.get(name)(D)
    assert post.num_params == 2
    flat = torch.randn(5, 2 * D, requires_grad=True)
    q = post(flat)
    assert q.batch_shape == (5,) and q.event_shape == (D,)
    torch.testing.assert_close(q.base_dist.loc, flat[:, :D])
    torch.testing.assert_close(q.base_dist.scale, F.softplus(flat[:, D:]) + 1e-4)
    z = q.rsample()
    z.sum().backward()
    assert flat.grad is not None and flat.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=str(2 * D)):
        post(torch.randn(5, D))


def test_posterior_scale_stays_positive_for_extreme_inputs() -> None:
    q = registry.posteriors.get("normal")(D)(torch.full((2, 2 * D), -1e4))
    assert (q.base_dist.scale > 0).all() and torch.isfinite(q.log_prob(q.mean)).all()


# ---------------------------------------------------------------- likelihoods


def likelihood(name: str, data: DataSpec, **params):
    return registry.likelihoods.get(name)(data, **params)


def test_bernoulli_is_the_cross_entropy_summed_per_example() -> None:
    data = DataSpec("grids", (1, 4, 5))
    lik = likelihood("bernoulli", data)
    logits = torch.randn(6, 1, 1, 4, 5)
    x = torch.rand(6, 1, 4, 5)
    p = torch.sigmoid(logits[:, 0])
    expected = (x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1)
    torch.testing.assert_close(lik.log_prob(logits, x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lik.mean(logits), p)
    s = lik.sample(logits)
    assert s.shape == (6, 1, 4, 5) and set(s.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="decoder output"):
        lik.log_prob(torch.randn(6, 2, 1, 4, 5), x)


@pytest.mark.parametrize("variance", ["fixed", "learned_global", "learned_per_value"])
def test_gaussian_matches_torch_normal(variance) -> None:
    data = DataSpec("vectors", (5,))
    lik = likelihood("gaussian", data, variance=variance, sigma=0.3)
    assert lik.num_params == (2 if variance == "learned_per_value" else 1)
    params = torch.randn(4, lik.num_params, 5)
    x = torch.randn(4, 5)
    if variance == "learned_per_value":
        scale = F.softplus(params[:, 1]) + 1e-3
    else:
        scale = torch.full((4, 5), 0.3)
    expected = torch.distributions.Normal(params[:, 0], scale).log_prob(x).sum(1)
    torch.testing.assert_close(lik.log_prob(params, x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lik.mean(params), params[:, 0])
    assert lik.sample(params).shape == (4, 5)
    learnable = [n for n, _ in lik.named_parameters()]
    assert learnable == (["raw_sigma"] if variance == "learned_global" else [])


def test_gaussian_rejects_unknown_variance() -> None:
    spec = {
        "data": {"kind": "vectors", "shape": [4]},
        "likelihood": {"name": "gaussian", "params": {"variance": "per_pixel"}},
    }
    with pytest.raises(SpecError, match="variance"):
        genlatent.build(spec)


def test_categorical_masks_padding_by_lengths_or_pad_id() -> None:
    data = DataSpec("tokens", (6,), vocab=tuple(VOCAB))
    lik = likelihood("categorical", data)
    x = torch.tensor([[4, 5, 2, 0, 0], [6, 4, 4, 5, 2]])
    lengths = torch.tensor([3, 5])
    logits = torch.randn(2, len(VOCAB), 5)
    logp = torch.log_softmax(logits, 1)
    expected = torch.stack(
        [sum(logp[b, x[b, t], t] for t in range(int(lengths[b]))) for b in range(2)]
    )
    torch.testing.assert_close(lik.log_prob(logits, x, lengths), expected)
    torch.testing.assert_close(lik.log_prob(logits, x), expected)  # PAD-id mask agrees
    changed = logits.clone()
    changed[0, :, 3:] = torch.randn(len(VOCAB), 2) * 10  # padded positions do not count
    torch.testing.assert_close(lik.log_prob(changed, x, lengths), expected)
    assert lik.mean(logits).shape == (2, 5) and lik.sample(logits).shape == (2, 5)
    with pytest.raises(ValueError, match="do not match"):
        lik.log_prob(logits[:, :, :4], x, lengths)


def test_lengths_from_ids_stop_at_first_eos() -> None:
    ids = torch.tensor([[4, 2, 0, 0], [4, 4, 4, 4], [2, 5, 2, 0]])
    assert lengths_from_ids(ids).tolist() == [2, 4, 1]


def test_poisson_matches_scipy() -> None:
    data = DataSpec("counts", (4,))
    lik = likelihood("poisson", data)
    params = torch.randn(3, 1, 4, dtype=torch.float64)
    x = torch.poisson(torch.full((3, 4), 2.0, dtype=torch.float64))
    rate = params[:, 0].exp()
    expected = torch.from_numpy(stats.poisson(rate.numpy()).logpmf(x.numpy()).sum(1))
    torch.testing.assert_close(lik.log_prob(params, x), expected)
    torch.testing.assert_close(lik.mean(params), rate)
    soft = likelihood("poisson", data, link="softplus")
    torch.testing.assert_close(soft.mean(params), F.softplus(params[:, 0]) + 1e-8)


def test_negative_binomial_matches_scipy_and_learns_dispersion() -> None:
    data = DataSpec("counts", (4,))
    lik = likelihood("negative_binomial", data, theta=2.5).double()
    with torch.no_grad():
        lik.log_theta.copy_(torch.log(torch.tensor([0.5, 1.0, 2.5, 10.0])))
    params = torch.randn(3, 1, 4, dtype=torch.float64) + 1.0
    x = torch.tensor([[0, 1, 5, 30], [2, 0, 0, 7], [11, 3, 1, 0]], dtype=torch.float64)
    mu, theta = params[:, 0].exp(), lik.theta.detach()
    expected = stats.nbinom(n=theta.numpy(), p=(theta / (theta + mu)).numpy()).logpmf(x.numpy())
    torch.testing.assert_close(lik.log_prob(params, x), torch.from_numpy(expected.sum(1)))
    (-lik.log_prob(params, x)).sum().backward()
    assert lik.log_theta.grad is not None and lik.log_theta.grad.abs().sum() > 0


def test_negative_binomial_samples_have_its_mean_and_variance() -> None:
    data = DataSpec("counts", (2,))
    lik = likelihood("negative_binomial", data, theta=2.0)
    params = torch.log(torch.tensor([3.0, 20.0])).expand(20_000, 1, 2)
    s = lik.sample(params)
    mu = torch.tensor([3.0, 20.0])
    torch.testing.assert_close(s.mean(0), mu, rtol=0.05, atol=0)
    torch.testing.assert_close(s.var(0), mu + mu**2 / 2.0, rtol=0.1, atol=0)


def test_likelihood_kinds() -> None:
    kinds = {name: registry.likelihoods.get(name).kinds for name in registry.likelihoods.names()}
    assert kinds["bernoulli"] == {"vectors", "grids"}
    assert kinds["categorical"] == {"tokens"}
    assert kinds["poisson"] == kinds["negative_binomial"] == {"counts"}
    spec = {"data": {"kind": "counts", "shape": [4]}, "likelihood": "bernoulli"}
    with pytest.raises(SpecError, match="does not fit counts"):
        genlatent.build(spec)
