"""The prior p(z | c) (``conditional_mixture``): the contract (shapes, KL method), that it
learns a different, possibly bimodal, distribution per condition, its start, the model and
CLI plumbing (train --prior conditional_mixture, sample --condition), save / load, refusals."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_models import LIKELIHOODS, spec_and_batch
from torch.distributions import Independent, Normal, kl_divergence

import genlatent
from genlatent import registry
from genlatent.cli.main import cli
from genlatent.distributions import ConditionalMixturePrior
from genlatent.errors import SpecError
from genlatent.parts import Prior

CONDITION = [
    {"name": "T", "kind": "numeric", "mean": 2.0, "std": 0.5},
    {"name": "g", "kind": "categorical", "categories": ["a", "b"]},
]
C = 3  # 1 numeric + 2 one-hot


def spec(components: int = 4, condition=CONDITION, **extra) -> dict:
    out = {
        "data": {"kind": "vectors", "shape": [6]}, "encoder": "mlp", "decoder": "mlp",
        "likelihood": "bernoulli", "latent_dim": 2,
        "prior": {"name": "conditional_mixture", "params": {"components": components,
                                                            "hidden": 16}},
        **extra,
    }
    if condition is not None:
        out["condition"] = condition
    return out


def test_registered_and_shapes():
    assert registry.priors.get("conditional_mixture") is ConditionalMixturePrior
    prior = ConditionalMixturePrior(3, condition_dim=C, components=5)
    c = torch.randn(7, C)
    p = prior(c)
    assert p.batch_shape == (7,) and p.event_shape == (3,)
    assert p.log_prob(torch.randn(4, 7, 3)).shape == (4, 7)  # k draws per example (IWAE)
    assert prior.sample(7, condition=c).shape == (7, 3)
    assert prior.sample(9, condition=c[0]).shape == (9, 3)  # one vector for every draw
    assert prior.log_prob(torch.randn(7, 3), condition=c).shape == (7,)
    one = ConditionalMixturePrior(3, condition_dim=C, components=1)(c)
    assert isinstance(one, Independent) and isinstance(one.base_dist, Normal)
    assert one.batch_shape == (7,) and one.event_shape == (3,)
    with pytest.raises(ValueError, match=r"condition must have shape \(B, 3\)"):
        prior(torch.randn(7, 2))
    with pytest.raises(ValueError, match="needs condition="):
        prior.sample(3)


def test_starts_as_the_unconditional_mixture():
    """At step 0 every condition gets the same overlapping mixture: uniform weights, scale 1,
    means spread 0.5 around the origin (MixturePrior's start), so every component sees codes."""
    torch.manual_seed(0)
    prior = ConditionalMixturePrior(8, condition_dim=C, components=10)
    with torch.no_grad():
        logits, means, scales = prior.mixture_at(torch.randn(50, C) * 3)
    assert torch.equal(logits, torch.zeros(50, 10))
    assert torch.allclose(scales, torch.ones_like(scales), atol=1e-5)
    assert torch.equal(means, means[:1].expand_as(means))  # the same for every condition
    assert 0.35 < float(means[0].std()) < 0.65
    assert float(means[0].abs().max()) < 2.5


def test_learns_a_bimodal_prior_that_depends_on_the_condition():
    """Fitted by maximum likelihood to codes that depend on c: at c = -1 two clusters
    (z1 = +-2, the two magnetisations below Tc), at c = +1 one cloud at the origin."""
    torch.manual_seed(0)
    prior = ConditionalMixturePrior(2, condition_dim=1, components=4, hidden=16)
    n = 128
    c = torch.cat([torch.full((n, 1), -1.0), torch.full((n, 1), 1.0)])
    sign = torch.randint(0, 2, (n,)) * 2.0 - 1.0
    z = torch.cat([torch.stack([2 * sign, torch.zeros(n)], 1), torch.zeros(n, 2)])
    z = z + 0.2 * torch.randn_like(z)
    opt = torch.optim.Adam(prior.parameters(), lr=3e-2)
    for _ in range(150):
        opt.zero_grad()
        (-prior.log_prob(z, condition=c).mean()).backward()
        opt.step()
    points = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 0.0]])
    with torch.no_grad():
        low = prior.log_prob(points, condition=torch.full((3, 1), -1.0))
        high = prior.log_prob(points, condition=torch.full((3, 1), 1.0))
    assert low[0] > low[2] + 3 and low[1] > low[2] + 3  # two modes, a gap between them
    assert high[2] > high[0] + 3 and high[2] > high[1] + 3  # one mode at the origin
    draws = prior.sample(2000, condition=torch.tensor([-1.0]))
    assert 0.4 < float((draws[:, 0] > 0).float().mean()) < 0.6  # both modes drawn
    assert float(draws[:, 0].abs().mean()) == pytest.approx(2.0, abs=0.2)


def test_model_kl_method_and_terms():
    x, c = torch.rand(5, 6).round(), torch.randn(5, C)
    one = genlatent.build(spec(components=1), seed=0)
    assert one.kl_method == "analytic"
    terms = one.elbo(x, condition=c)
    q, p = one.encode(x, condition=c), one.prior(c)
    assert torch.allclose(terms["kl"], kl_divergence(q, p))  # KL to p(z | c), not to N(0, I)
    _, metrics = one.loss({"x": x, "condition": c})
    assert float(metrics["kl_analytic"]) == 1.0
    many = genlatent.build(spec(components=4, objective={"iwae_samples": 3}), seed=0)
    assert many.kl_method == "monte_carlo"
    loss, metrics = many.loss({"x": x, "condition": c})
    assert torch.isfinite(loss) and float(metrics["kl_analytic"]) == 0.0
    bound = many.iwae_bound(x, 8, condition=c)
    assert bound.shape == (5,) and torch.isfinite(bound).all()
    with pytest.raises(SpecError, match="conditioned on T, g"):
        many.sample(3)


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=lambda v: f"{v[0]}-{len(v[1])}")
def test_trains_with_every_likelihood(likelihood):
    """Two optimiser steps: finite losses, and every prior parameter learns (the MLP's hidden
    layer from the second step on: its output layer starts at zero)."""
    name, params = likelihood
    parts = {"likelihood": {"name": name, "params": params}, "condition": CONDITION,
             "prior": {"name": "conditional_mixture", "params": {"components": 3, "hidden": 8}}}
    spec, batch = spec_and_batch(name, **parts)
    model = genlatent.build(spec)
    batch["condition"] = torch.randn(batch["x"].shape[0], C)
    before = {n: p.detach().clone() for n, p in model.prior.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(2):
        loss, _ = model.loss(batch, step=step)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in model.prior.named_parameters():
        assert not torch.equal(p, before[n]), n
    z = model.sample(2, condition=batch["condition"][:2])
    assert (z[0] if name == "categorical" else z).shape[0] == 2


def test_round_trip_saves_and_samples_the_same(tmp_path):
    model = genlatent.build(spec(components=3), seed=0).eval()
    with torch.no_grad():  # a prior that depends on c, as after training
        for param in model.prior.parameters():
            param.add_(0.3 * torch.randn_like(param))
    assert model.spec["prior"] == {
        "name": "conditional_mixture",
        "params": {"components": 3, "hidden": 16, "spread": 0.5, "scale": 1.0},
    }
    model.save(tmp_path / "m")
    again = genlatent.load(tmp_path / "m").eval()
    assert again.spec == model.spec
    c = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    z = torch.randn(2, 2)
    assert torch.equal(model.prior.log_prob(z, c), again.prior.log_prob(z, c))
    assert not torch.allclose(model.prior.log_prob(z, c[:1]), model.prior.log_prob(z, c[1:]))
    torch.manual_seed(5)
    first = model.sample(4, condition=c[0])
    torch.manual_seed(5)
    assert torch.equal(first, again.sample(4, condition=c[0]))


def test_refused_without_conditions():
    with pytest.raises(SpecError) as err:
        genlatent.build(spec(condition=None))
    message = str(err.value)
    assert "\n" not in message
    assert "prior 'conditional_mixture'" in message and "--condition" in message


class _PluginConditionalPrior(Prior):
    """A plugin's p(z | c): a normal whose mean is c's first value in every dimension; it
    does not check its condition_dim itself."""

    takes_condition = True

    def __init__(self, latent_dim: int, condition_dim: int = 0) -> None:
        super().__init__(latent_dim)

    def forward(self, condition):
        loc = condition[:, :1].expand(-1, self.latent_dim)
        return Independent(Normal(loc, torch.ones_like(loc)), 1)


def test_plugin_prior_contract():
    """The model hands a plugin's p(z | c) the batch's condition (the KL is the closed form
    against N(c_0, I)); without conditions the build refuses it for the plugin."""
    registry.priors.add("cprior_test_plugin", _PluginConditionalPrior, replace=True)
    try:
        model = genlatent.build({**spec(), "prior": "cprior_test_plugin"}, seed=0)
        assert model.spec["prior"] == {"name": "cprior_test_plugin", "params": {}}
        x, c = torch.rand(4, 6).round(), torch.randn(4, C)
        q = model.encode(x, condition=c)
        loc = c[:, :1].expand(-1, 2)
        expected = kl_divergence(q, Independent(Normal(loc, torch.ones_like(loc)), 1))
        assert torch.allclose(model.elbo(x, condition=c)["kl"], expected)
        torch.manual_seed(1)
        z = model.sample_codes(500, torch.tensor([4.0, 0.0, 1.0]))
        assert float(z.mean()) == pytest.approx(4.0, abs=0.1)
        refusal = r"prior 'cprior_test_plugin' is p\(z \| c\) and needs a conditional model"
        with pytest.raises(SpecError, match=refusal + ": train with --condition"):
            genlatent.build({**spec(condition=None), "prior": "cprior_test_plugin"})
    finally:
        registry.priors.unregister("cprior_test_plugin")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """12-value binary vectors whose on-half follows the temperature column."""
    rng = np.random.default_rng(0)
    n = 160
    t = rng.uniform(1.0, 3.0, n).astype(np.float32)
    x = np.zeros((n, 12), np.float32)
    x[t < 2.0, :6] = 1
    x[t >= 2.0, 6:] = 1
    path = tmp_path_factory.mktemp("cprior") / "t.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.where(rng.random(x.shape) < 0.03, 1 - x, x).astype(np.float32)
        f["T"] = t
    return path


def test_cli_train_and_sample(tmp_path, data):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(cli, [
        "train", str(data), "--condition", "T", "--prior", "conditional_mixture",
        "--encoder", "mlp", "--decoder", "mlp", "--latent-dim", "2", "--epochs", "3",
        "--batch-size", "32", "--set", "prior.components=3", "--set", "prior.hidden=8",
        "--no-plots", "--out", str(run),
    ])
    assert result.exit_code == 0, result.output + result.stderr
    loaded = genlatent.load_run(run)
    assert loaded.spec["prior"]["params"]["components"] == 3
    samples = tmp_path / "s.h5"
    result = runner.invoke(cli, ["sample", str(run), "-n", "10", "--condition", "T=2.5",
                                 "--out", str(samples)])
    assert result.exit_code == 0, result.output + result.stderr
    with h5py.File(samples) as f:
        assert f["x"].shape == (10, 12) and f["z"].shape == (10, 2)
        assert np.allclose(f["T"][()], 2.5)
    result = runner.invoke(cli, ["sample", str(run), "-n", "3", "--out", str(tmp_path / "n.h5")])
    assert result.exit_code == 2 and "conditioned on T" in result.stderr
    result = runner.invoke(cli, ["evaluate", str(run), str(data), "--iwae-samples", "3",
                                 "--json"])  # ELBO and IWAE bound against p(z | T) per row
    assert result.exit_code == 0, result.output + result.stderr
    result = runner.invoke(cli, ["info", str(run)])
    assert result.exit_code == 0 and "conditional_mixture" in result.output


def test_cli_refuses_it_without_condition(tmp_path, data):
    result = CliRunner().invoke(cli, [
        "train", str(data), "--prior", "conditional_mixture", "--epochs", "1",
        "--out", str(tmp_path / "r"),
    ])
    assert result.exit_code == 2, result.output
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("Error: ") and "Traceback" not in result.stderr
    assert "prior 'conditional_mixture'" in last and "--condition" in last
    assert not (tmp_path / "r").exists()
