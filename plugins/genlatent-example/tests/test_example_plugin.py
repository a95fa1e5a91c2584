"""The example plugin's parts, tested directly (no entry-point discovery needed)."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from genlatent_example.parts import (
    ContinuousBernoulliLikelihood,
    LinearDecoder,
    LinearEncoder,
    StudentTPrior,
)

from genlatent.dataspec import DataSpec


def test_student_t_prior_matches_its_density() -> None:
    prior = StudentTPrior(latent_dim=2, df=3.0)
    z = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    # Student-t(df=3) log density at 0: lgamma(2) - lgamma(1.5) - 0.5 log(3 pi)
    at_zero = math.lgamma(2.0) - math.lgamma(1.5) - 0.5 * math.log(3 * math.pi)
    expected = dist.StudentT(3.0, 0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(prior.log_prob(z), expected)
    assert abs(prior.log_prob(z)[0].item() - 2 * at_zero) < 1e-5
    torch.manual_seed(0)
    assert prior.sample(7).shape == (7, 2)


def test_continuous_bernoulli_is_normalised_and_sums_over_dimensions() -> None:
    data = DataSpec("vectors", (3,))
    likelihood = ContinuousBernoulliLikelihood(data)
    params = torch.zeros(2, 1, 3)  # logits 0: the uniform density on [0, 1], log p = 0
    x = torch.rand(2, 3)
    assert torch.allclose(likelihood.log_prob(params, x), torch.zeros(2), atol=1e-5)
    params = torch.full((1, 1, 3), 2.0)
    one = dist.ContinuousBernoulli(logits=torch.tensor(2.0)).log_prob(torch.tensor(0.7))
    assert torch.allclose(likelihood.log_prob(params, torch.full((1, 3), 0.7)), 3 * one)


def test_linear_networks_fit_the_contract() -> None:
    data = DataSpec("grids", (1, 4, 5))
    encoder = LinearEncoder(data, out_features=6)
    decoder = LinearDecoder(data, latent_dim=3, num_params=2)
    assert encoder(torch.rand(8, 1, 4, 5)).shape == (8, 6)
    assert decoder(torch.randn(8, 3)).shape == (8, 2, 1, 4, 5)
