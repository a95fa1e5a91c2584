"""Flow posteriors (IAF, neural spline): densities against the change of variables, shapes,
the Monte-Carlo KL, the point code, save/load, and that the VAE never inverts a flow."""

from __future__ import annotations

import pyro.distributions as dist
import pytest
import torch

import genlatent
from genlatent import registry
from genlatent.distributions import FlowDistribution, kl_method, rsample_with_log_prob

D = 3
FLOWS = [
    ("iaf", {}),
    ("spline", {"count_bins": 4, "bound": 2.0}),
    ("iaf", {"context": True}),
    ("spline", {"count_bins": 4, "bound": 2.0, "context": True}),
]


def width(params: dict) -> int:
    """The encoder's output per example: loc, scale (and the context h)."""
    return (3 if params.get("context") else 2) * D


def posterior(name: str, **params):
    post = registry.posteriors.get(name)(D, num_flows=2, hidden=[8], **params)
    with torch.no_grad():  # move every flow away from the identity it starts near
        for p in post.flows.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return post


def vector_spec(post: str, **objective) -> dict:
    return {
        "latent_dim": D,
        "data": {"kind": "vectors", "shape": [10]},
        "encoder": {"name": "mlp", "params": {"hidden": [16]}},
        "decoder": {"name": "mlp", "params": {"hidden": [16]}},
        "posterior": {"name": post, "params": {"num_flows": 2, "hidden": [8]}},
        "objective": objective,
    }


@pytest.mark.parametrize(("name", "params"), FLOWS)
def test_log_prob_of_own_draws_is_the_change_of_variables(name: str, params: dict) -> None:
    post = posterior(name, **params)
    q_params = torch.randn(4, width(params))
    q = post(q_params)
    assert isinstance(q, FlowDistribution)
    assert q.batch_shape == (4,) and q.event_shape == (D,)
    z, log_q = q.rsample_with_log_prob((5,))
    assert z.shape == (5, 4, D) and log_q.shape == (5, 4)
    # pyro's TransformedDistribution, scoring copies of z (no cache: it inverts the flows)
    reference = dist.TransformedDistribution(q.base_dist, q.transforms).log_prob(z.clone())
    torch.testing.assert_close(log_q, reference, atol=1e-4, rtol=1e-4)
    # and the change of variables by hand, for one example: base density minus log |det| of
    # the numeric Jacobian
    q1 = post(q_params[:1])
    x = q1.base_dist.rsample()  # (1, D)

    def f(v: torch.Tensor) -> torch.Tensor:
        for t in q1.transforms:
            v = t(v)
        return v

    jac = torch.autograd.functional.jacobian(f, x).reshape(D, D)
    expected = q1.base_dist.log_prob(x)[0] - torch.linalg.slogdet(jac)[1]
    torch.testing.assert_close(q1.log_prob(f(x).clone())[0], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("name", "params"), FLOWS)
def test_kl_is_monte_carlo_and_the_point_code_is_the_flowed_base_mean(name, params) -> None:
    post = posterior(name, **params)
    q = post(torch.randn(4, width(params)))
    prior = dist.Normal(torch.zeros(D), 1.0).to_event(1)
    assert kl_method(q, prior) == "monte_carlo"
    z = q.base_dist.mean
    for t in q.transforms:
        z = t(z)
    torch.testing.assert_close(post.point_code(q), z)
    spec = vector_spec(name)
    spec["posterior"]["params"].update(params)
    model = genlatent.build(spec, seed=0)
    assert model.encoder.out_features == width(params)
    assert model.kl_method == "monte_carlo"
    x = torch.rand(6, 10).round()
    torch.testing.assert_close(
        model.encode_mean(x), model.posterior.point_code(model.encode(x))
    )


def test_a_context_flow_depends_on_the_context_and_a_global_one_does_not() -> None:
    params = torch.randn(4, 3 * D)
    other = params.clone()
    other[:, 2 * D :] += 1.0  # the same base normal, another context h
    base = posterior("iaf", context=True)
    torch.manual_seed(0)
    z, log_q = base(params).rsample_with_log_prob()
    torch.manual_seed(0)
    z_other, log_q_other = base(other).rsample_with_log_prob()
    assert not torch.allclose(z, z_other) and not torch.allclose(log_q, log_q_other)
    with pytest.raises(ValueError, match=r"expects encoder output \(B, 9\)"):
        base(torch.randn(4, 2 * D))
    plain = posterior("iaf")
    assert plain.num_params == 2 and base.num_params == 3


def test_the_vae_scores_only_draws_of_q_never_inverting_a_flow(monkeypatch) -> None:
    model = genlatent.build(vector_spec("iaf", iwae_samples=3), seed=0)

    def refuse(self, y):  # noqa: ANN001
        raise AssertionError("a flow was inverted")

    monkeypatch.setattr(type(model.posterior.flows[0]), "_inverse", refuse)
    x = torch.rand(6, 10).round()
    loss, metrics = model.loss({"x": x}, step=0)
    loss.backward()
    assert metrics["kl_analytic"].item() == 0.0
    model.iwae_bound(x, k=7, batch_k=3)
    model.elbo(x)
    z, log_q = rsample_with_log_prob(model.encode(x), (2,))
    assert torch.isfinite(log_q).all()


@pytest.mark.parametrize(("name", "params"), FLOWS)
def test_save_load_round_trip_gives_the_same_outputs(name, params, tmp_path) -> None:
    spec = vector_spec(name)
    spec["posterior"]["params"].update(params)
    model = genlatent.build(spec, seed=0)
    with torch.no_grad():
        for p in model.posterior.flows.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.rand(5, 10).round()
    model.save(tmp_path / "m")
    loaded = genlatent.load(tmp_path / "m")
    recorded = loaded.spec["posterior"]["params"]
    assert recorded["num_flows"] == 2 and recorded["hidden"] == [8]
    assert recorded["context"] is bool(params.get("context"))
    if name == "spline":
        assert recorded["count_bins"] == 4 and recorded["bound"] == 2.0
    torch.testing.assert_close(loaded.encode_mean(x), model.encode_mean(x))
    torch.manual_seed(3)
    a = model.iwae_bound(x, k=4)
    torch.manual_seed(3)
    torch.testing.assert_close(loaded.iwae_bound(x, k=4), a)


def test_bad_flow_parameters_are_spec_errors() -> None:
    from genlatent.errors import SpecError

    for post, params, word in [("iaf", {"num_flows": 0}, "num_flows"),
                               ("iaf", {"hidden": []}, "hidden"),
                               ("iaf", {"context": 1}, "context"),
                               ("spline", {"bound": -1.0}, "bound")]:  # fmt: skip
        spec = vector_spec(post)
        spec["posterior"]["params"].update(params)
        with pytest.raises(SpecError, match=word):
            genlatent.build(spec)
