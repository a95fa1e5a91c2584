"""AE and VAE: objectives against closed forms, training, IWAE, generation, every pairing."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn import functional as F

import genlatent
from genlatent import registry
from genlatent.errors import SpecError
from genlatent.models import AE, VAE

VOCAB = ["<pad>", "<bos>", "<eos>", "<unk>", "C", "O", "N", "="]
SMALL = {"hidden": [32]}


def vector_spec(model: str = "vae", dim: int = 12, latent: int = 3, **parts) -> dict:
    spec = {
        "model": model,
        "latent_dim": latent,
        "data": {"kind": "vectors", "shape": [dim]},
        "encoder": {"name": "mlp", "params": SMALL},
        "decoder": {"name": "mlp", "params": SMALL},
    }
    spec.update(parts)
    return spec


def token_spec(**parts) -> dict:
    spec = {
        "model": "vae",
        "latent_dim": 3,
        "data": {"kind": "tokens", "shape": [8], "vocab": VOCAB},
        "encoder": {"name": "gru", "params": {"hidden_size": 16, "embedding_dim": 8}},
        "decoder": {"name": "gru", "params": {"hidden_size": 16, "embedding_dim": 8}},
    }
    spec.update(parts)
    return spec


def binary_data(n: int = 256, dim: int = 12) -> torch.Tensor:
    """Binary vectors driven by 2 hidden factors: a latent-variable model can compress them."""
    factors = torch.randn(n, 2)
    weights = torch.randn(2, dim) * 3
    return torch.bernoulli(torch.sigmoid(factors @ weights))


def token_batch() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[4, 5, 2, 0, 0], [4, 4, 6, 7, 2], [6, 2, 0, 0, 0]])
    return x, torch.tensor([3, 5, 2])


def train(model, x: torch.Tensor, steps: int, lr: float = 1e-2, batch: int = 64) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,))
        loss, _ = model.loss({"x": x[idx]}, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            losses.append(model.loss({"x": x}, None)[0].item())
    return losses


# ---------------------------------------------------------------- objectives


def test_ae_loss_is_the_seeds_cross_entropy() -> None:
    model = genlatent.build(vector_spec("ae"))
    assert isinstance(model, AE) and model.posterior is None and model.prior is None
    x = binary_data(10)
    loss, metrics = model.loss({"x": x})
    logits = model.decoder(model.encoder(x))[:, 0]
    expected = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    torch.testing.assert_close(loss, expected)
    assert set(metrics) == {"loss", "reconstruction"}
    torch.testing.assert_close(metrics["reconstruction"], expected.detach())
    assert model.encode(x).shape == (10, 3)


def test_vae_elbo_terms_use_the_seeds_kl() -> None:
    model = genlatent.build(vector_spec())
    assert isinstance(model, VAE)
    x = binary_data(7)
    terms = model.elbo(x)
    assert {k: v.shape for k, v in terms.items()} == {
        k: (7,) for k in ("reconstruction", "kl", "neg_elbo", "elbo")
    }
    q = model.encode(x)
    mu, sigma = q.base_dist.loc, q.base_dist.scale
    seed_kl = 0.5 * (sigma**2 + mu**2 - 1 - 2 * torch.log(sigma)).sum(-1)
    torch.testing.assert_close(terms["kl"], seed_kl, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(terms["neg_elbo"], terms["reconstruction"] + terms["kl"])
    torch.testing.assert_close(terms["elbo"], -terms["neg_elbo"])
    torch.testing.assert_close(model.encode_mean(x), mu)


def test_loss_metrics_are_batch_means_and_name_the_kl_method() -> None:
    model = genlatent.build(vector_spec(objective={"beta": 2.0}))
    x = binary_data(9)
    torch.manual_seed(3)
    loss, metrics = model.loss({"x": x}, step=10)
    torch.manual_seed(3)
    terms = model.elbo(x)
    torch.testing.assert_close(loss, (terms["reconstruction"] + 2.0 * terms["kl"]).mean())
    for name in ("reconstruction", "kl", "neg_elbo"):
        torch.testing.assert_close(metrics[name], terms[name].mean().detach())
    assert metrics["kl_weight"].item() == 2.0
    assert metrics["kl_analytic"].item() == 1.0 and model.kl_method == "analytic"
    assert not any(v.requires_grad for v in metrics.values())
    mixture = genlatent.build(vector_spec(prior={"name": "mixture", "params": {"components": 3}}))
    assert mixture.loss({"x": x})[1]["kl_analytic"].item() == 0.0
    assert mixture.kl_method == "monte_carlo"


def test_kl_warmup_is_linear_from_zero_to_beta() -> None:
    model = genlatent.build(vector_spec(objective={"beta": 0.5, "kl_warmup_steps": 100}))
    assert [model.kl_weight(s) for s in (0, 50, 100, 1000)] == [0.0, 0.25, 0.5, 0.5]
    assert model.kl_weight(None) == 0.5
    x = binary_data(5)
    torch.manual_seed(1)
    loss, metrics = model.loss({"x": x}, step=0)
    torch.testing.assert_close(loss.detach(), metrics["reconstruction"])
    assert metrics["kl"] > 0 and metrics["kl_weight"].item() == 0.0


@pytest.mark.parametrize(
    "objective, match",
    [({"beta": -1}, "beta"), ({"kl_samples": 0}, "kl_samples"),
     ({"kl_warmup_steps": 1.5}, "kl_warmup_steps"), ({"gamma": 1}, "gamma")],
)
def test_bad_objective_is_a_spec_error(objective, match) -> None:
    with pytest.raises(SpecError, match=match):
        genlatent.build(vector_spec(objective=objective))


def test_ae_takes_no_objective_and_cannot_sample() -> None:
    with pytest.raises(SpecError, match="objective"):
        genlatent.build(vector_spec("ae", objective={"beta": 1.0}))
    with pytest.raises(SpecError, match="no prior"):
        genlatent.build(vector_spec("ae")).sample(2)


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("model_name", ["ae", "vae"])
def test_models_train_and_their_loss_falls(model_name) -> None:
    x = binary_data()
    objective = {"kl_warmup_steps": 20} if model_name == "vae" else {}
    model = genlatent.build(vector_spec(model_name, objective=objective))
    losses = train(model, x, steps=60)
    first, last = losses[0], sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)


def test_iwae_bound_is_above_the_elbo_and_grows_with_k() -> None:
    x = binary_data(200)
    model = genlatent.build(vector_spec())
    train(model, x, steps=80)
    model.eval()
    x = x.repeat(5, 1)  # 1000 evaluations: Monte-Carlo error of the means ~0.02 nats
    with torch.no_grad():
        elbo = torch.stack([model.elbo(x)["elbo"] for _ in range(10)]).mean().item()
        repeats = {1: 10, 10: 5, 200: 1}  # fewer repeats where the bound is less noisy
        bounds = {
            k: torch.stack([model.iwae_bound(x, k) for _ in range(r)]).mean().item()
            for k, r in repeats.items()
        }
    assert bounds[1] == pytest.approx(elbo, abs=0.05)  # k = 1 is the ELBO in expectation
    assert elbo + 0.1 < bounds[10] < bounds[200] - 0.01, (elbo, bounds)


def test_iwae_objective_with_one_sample_is_the_elbo_of_the_same_draw() -> None:
    model = genlatent.build(vector_spec(prior={"name": "mixture", "params": {"components": 3}}))
    x = binary_data(6)
    torch.manual_seed(5)
    bound = model.iwae_bound(x, 1)
    torch.manual_seed(5)
    q, p = model.encode(x), model.prior()
    z = q.rsample()
    single = -model.reconstruction_nll(z, x) + p.log_prob(z) - q.log_prob(z)
    torch.testing.assert_close(bound, single)  # the one-draw ELBO, term by term


def test_iwae_objective_trains_on_the_bound_and_reports_the_elbo_terms() -> None:
    x = binary_data(200)
    plain = genlatent.build(vector_spec(), seed=0)
    train(plain, x, steps=60)
    iwae = genlatent.build(vector_spec(objective={"iwae_samples": 8}), seed=0)
    iwae.load_state_dict(plain.state_dict())
    assert iwae.spec["objective"]["iwae_samples"] == 8
    assert plain.spec["objective"]["iwae_samples"] == 1
    x = x.repeat(3, 1)
    torch.manual_seed(0)
    loss, metrics = iwae.loss({"x": x}, step=0)
    torch.testing.assert_close(loss.detach(), metrics["neg_iwae"])
    torch.testing.assert_close(metrics["neg_elbo"], metrics["reconstruction"] + metrics["kl"])
    assert metrics["kl_analytic"].item() == 1.0  # the closed-form KL in the metrics
    elbo_loss = torch.stack([plain.loss({"x": x}, step=0)[0] for _ in range(10)]).mean()
    assert loss < elbo_loss - 0.1  # the 8-sample bound is tighter than the ELBO
    assert abs(metrics["neg_elbo"] - elbo_loss) < 0.3  # the ELBO terms, reported as before
    # a KL weight of 0 tempers the prior ratio away: -log mean_i p(x | z_i)
    torch.manual_seed(1)
    cold = genlatent.build(vector_spec(objective={"iwae_samples": 8, "beta": 0.0}), seed=0)
    cold.load_state_dict(plain.state_dict())
    torch.manual_seed(2)
    loss0 = cold.loss({"x": x[:4]}, step=0)[0]
    torch.manual_seed(2)
    z = cold.encode(x[:4]).rsample((8,))
    log_px = torch.stack([-cold.reconstruction_nll(zi, x[:4]) for zi in z])
    expected = (torch.log(torch.tensor(8.0)) - torch.logsumexp(log_px, 0)).mean()
    torch.testing.assert_close(loss0, expected)


def test_iwae_objective_refuses_free_bits() -> None:
    with pytest.raises(SpecError, match="'free_bits' .* 'iwae_samples'"):
        genlatent.build(vector_spec(objective={"iwae_samples": 4, "free_bits": 0.5}))
    with pytest.raises(SpecError, match="iwae_samples"):
        genlatent.build(vector_spec(objective={"iwae_samples": 0}))


class _Replay:
    """q(z|x) whose draws come, in order, from a fixed tensor: makes chunking checkable."""

    def __init__(self, q, draws: torch.Tensor) -> None:
        self.q, self.draws, self.used = q, draws, 0

    def rsample(self, shape=()) -> torch.Tensor:
        n = shape[0]
        out = self.draws[self.used : self.used + n]
        self.used += n
        return out

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.q.log_prob(z)


def test_iwae_chunking_gives_the_same_value_for_the_same_draws(monkeypatch) -> None:
    model = genlatent.build(vector_spec())
    x = binary_data(20)
    with torch.no_grad():
        q = model.encode(x)
        draws = q.sample((30,))
        values = {}
        for batch_k in (None, 7, 30, 100):
            monkeypatch.setattr(model, "encode", lambda *a, **k: _Replay(q, draws))
            values[batch_k] = model.iwae_bound(x, 30, batch_k=batch_k)
        # by hand: log mean_i p(x|z_i) p(z_i) / q(z_i)
        log_px = torch.stack([-model.reconstruction_nll(z, x) for z in draws])
        log_w = log_px + model.prior().log_prob(draws) - q.log_prob(draws)
        expected = torch.logsumexp(log_w, 0) - torch.log(torch.tensor(30.0))
    for batch_k, value in values.items():
        torch.testing.assert_close(value, expected, msg=f"batch_k={batch_k}")
    with pytest.raises(ValueError, match="k must be"):
        model.iwae_bound(x, 0)


def test_token_vae_masks_padding_and_generates() -> None:
    model = genlatent.build(token_spec())
    x, lengths = token_batch()
    loss, metrics = model.loss({"x": x, "lengths": lengths}, step=0)
    assert torch.isfinite(loss)
    with torch.no_grad():
        bound = model.iwae_bound(x, 6, lengths, batch_k=4)
    assert bound.shape == (3,) and torch.isfinite(bound).all()
    ids, out_lengths = model.reconstruct(x, lengths)
    assert ids.shape == (3, 8) and out_lengths.shape == (3,)
    ids, out_lengths = model.sample(4, temperature=0.7)
    assert ids.shape == (4, 8)
    for row, n in zip(ids, out_lengths, strict=True):
        assert row[n - 1] == 2 and (row[n:] == 0).all()  # ends with <eos>, then padding


def test_vector_sample_and_reconstruct_shapes() -> None:
    model = genlatent.build(vector_spec())
    x = binary_data(4)
    rec = model.reconstruct(x)
    assert rec.shape == (4, 12) and ((rec >= 0) & (rec <= 1)).all()
    assert model.sample(5).shape == (5, 12)
    drawn = model.sample(5, mean=False)
    assert set(drawn.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "likelihood", ["bernoulli", {"name": "gaussian", "params": {"variance": "learned_per_value"}}]
)
def test_grid_vae_with_cnn(likelihood) -> None:
    cnn = {"name": "cnn", "params": {"channels": [4, 8]}}
    spec = {
        "latent_dim": 2,
        "data": {"kind": "grids", "shape": [1, 8, 8]},
        "encoder": cnn,
        "decoder": cnn,
        "likelihood": likelihood,
    }
    model = genlatent.build(spec)
    x = torch.rand(5, 1, 8, 8).round()
    loss, metrics = model.loss({"x": x}, step=0)
    assert torch.isfinite(loss) and metrics["neg_elbo"] > 0
    loss.backward()
    assert model.reconstruct(x).shape == (5, 1, 8, 8)
    assert model.sample(3).shape == (3, 1, 8, 8)


def test_save_and_load_keep_learned_prior_and_dispersion(tmp_path) -> None:
    spec = {
        "latent_dim": 2,
        "data": {"kind": "counts", "shape": [6]},
        "encoder": {"name": "mlp", "params": SMALL},
        "decoder": {"name": "mlp", "params": SMALL},
        "prior": {"name": "mixture", "params": {"components": 3}},
        "likelihood": "negative_binomial",
    }
    model = genlatent.build(spec)
    x = torch.poisson(torch.full((16, 6), 4.0))
    train(model, x, steps=3, batch=8)
    model.save(tmp_path / "m")
    again = genlatent.load(tmp_path / "m")
    model.eval()
    torch.manual_seed(5)
    expected = model.elbo(x)["neg_elbo"]
    torch.manual_seed(5)
    torch.testing.assert_close(again.elbo(x)["neg_elbo"], expected)


# ---------------------------------------------------------------- every pairing

NATURAL_DATA = {
    "bernoulli": ("vectors", lambda: torch.rand(8, 6).round()),
    "gaussian": ("vectors", lambda: torch.randn(8, 6)),
    "poisson": ("counts", lambda: torch.poisson(torch.full((8, 6), 3.0))),
    "negative_binomial": ("counts", lambda: torch.poisson(torch.full((8, 6), 3.0))),
}
LIKELIHOODS = [
    ("bernoulli", {}),
    ("gaussian", {"variance": "fixed"}),
    ("gaussian", {"variance": "learned_global"}),
    ("gaussian", {"variance": "learned_per_value"}),
    ("poisson", {}),
    ("negative_binomial", {}),
    ("categorical", {}),
]
PRIORS = [
    ("standard_normal", {}),
    ("laplace", {"learn_scale": True}),
    ("mixture", {"components": 3}),
]
POSTERIORS = ["normal", "laplace"]
# the parts of issue 16, each with every likelihood (not every pairing: they cost more)
NEWER = [(("vamp", {"components": 3}), "normal"), (("standard_normal", {}), "iaf"),
         (("standard_normal", {}), "spline")]  # fmt: skip
# priors p(z | c) need a conditional model: each likelihood in tests/test_conditional_prior.py
CONDITIONAL_PRIORS = ["conditional_mixture"]


def test_every_builtin_likelihood_prior_and_posterior_is_covered() -> None:
    assert {n for n, _ in LIKELIHOODS} >= {
        n for n in registry.likelihoods.names() if registry.likelihoods.provider(n) == "genlatent"
    }
    assert {n for n, _ in PRIORS} | {prior[0] for prior, _ in NEWER} | set(CONDITIONAL_PRIORS) >= {
        n for n in registry.priors.names() if registry.priors.provider(n) == "genlatent"
    }
    assert set(POSTERIORS) | {post for _, post in NEWER} >= {
        n for n in registry.posteriors.names() if registry.posteriors.provider(n) == "genlatent"
    }


def spec_and_batch(likelihood: str, /, **parts) -> tuple[dict, dict]:
    """A spec with ``parts`` for the natural data of the likelihood named ``likelihood``
    (tokens for ``categorical``), and a batch of such data."""
    if likelihood == "categorical":
        spec = token_spec(**parts)
        x, lengths = token_batch()
        return spec, {"x": x, "lengths": lengths}
    kind, make = NATURAL_DATA[likelihood]
    spec = vector_spec(dim=6, **parts)
    spec["data"]["kind"] = kind
    return spec, {"x": make()}


@pytest.mark.parametrize(
    "prior, posterior, likelihood",
    [*itertools.product(PRIORS, POSTERIORS, LIKELIHOODS),
     *((prior, post, lik) for (prior, post), lik in itertools.product(NEWER, LIKELIHOODS))],
    ids=lambda v: v[0] if isinstance(v, tuple) else v,
)
def test_vae_builds_from_a_spec_and_trains_a_step(prior, posterior, likelihood) -> None:
    lik_name, lik_params = likelihood
    parts = {
        "prior": {"name": prior[0], "params": prior[1]},
        "posterior": posterior,
        "likelihood": {"name": lik_name, "params": lik_params},
        "objective": {"kl_samples": 2},
    }
    spec, batch = spec_and_batch(lik_name, **parts)
    if lik_name == "categorical" and prior[0] == "vamp":  # no pseudo-inputs for tokens
        with pytest.raises(SpecError, match="prior 'vamp' needs pseudo-inputs"):
            genlatent.build(spec)
        return
    model = genlatent.build(spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss, metrics = model.loss(batch, step=0)
    assert torch.isfinite(loss) and {"loss", "reconstruction", "kl", "neg_elbo"} <= set(metrics)
    opt.zero_grad()
    loss.backward()
    opt.step()
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("encoder.") for n in changed)
    assert any(n.startswith("decoder.") for n in changed)
    for n, _ in model.prior.named_parameters():  # learnable priors learn
        assert f"prior.{n}" in changed, n
    for n, _ in model.likelihood.named_parameters():  # and so do learned variances / dispersions
        assert f"likelihood.{n}" in changed, n
    assert torch.isfinite(model.loss(batch, step=1)[0])


def test_whole_model_follows_to_dtype() -> None:
    """Buffers (standard-normal loc/scale, fixed sigmas) move with the model like parameters,
    which is what makes ``model.to(device)`` work."""
    for prior in ("standard_normal", "laplace", "mixture"):
        spec = vector_spec(prior=prior, likelihood={"name": "gaussian", "params": {"sigma": 0.5}})
        model = genlatent.build(spec).double()
        x = torch.randn(4, 12, dtype=torch.float64)
        loss, metrics = model.loss({"x": x}, step=0)
        assert loss.dtype == torch.float64 and metrics["kl"].dtype == torch.float64
        assert model.sample(2).dtype == torch.float64
