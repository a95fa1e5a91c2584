"""VampPrior: the mixture formula, the encoder held once, links, sampling, refusals, save/load
and the CLI (``--prior vamp``, ``--posterior iaf``, the IWAE objective)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import genlatent
from genlatent.cli.main import cli
from genlatent.data import write_h5
from genlatent.errors import SpecError

K = 4


def vector_spec(
    likelihood: str = "bernoulli", posterior: str = "normal", kind: str = "vectors", **prior
) -> dict:
    return {
        "latent_dim": 2,
        "data": {"kind": kind, "shape": [6]},
        "encoder": {"name": "mlp", "params": {"hidden": [8]}},
        "decoder": {"name": "mlp", "params": {"hidden": [8]}},
        "likelihood": likelihood,
        "posterior": posterior,
        "prior": {"name": "vamp", "params": {"components": K, **prior}},
    }


def test_log_prob_is_the_mixture_of_the_pseudo_inputs_posteriors() -> None:
    model = genlatent.build(vector_spec(), seed=0)
    u = model.prior.pseudo_inputs
    assert u.shape == (K, 6) and ((u > 0) & (u < 1)).all()  # sigmoid link for Bernoulli data
    z = torch.randn(5, 2)
    loc, scale = model.posterior.split(model.encoder(u))  # (K, 2) each
    per_component = (  # log N(z | loc_k, diag scale_k^2), by hand
        -0.5 * ((z[:, None] - loc) / scale).pow(2) - scale.log() - 0.5 * math.log(2 * math.pi)
    ).sum(-1)  # (5, K)
    expected = torch.logsumexp(per_component, dim=1) - math.log(K)
    torch.testing.assert_close(model.prior.log_prob(z), expected)


def test_the_encoder_is_held_once_and_gradients_reach_pseudo_inputs() -> None:
    model = genlatent.build(vector_spec(), seed=0)
    keys = list(model.state_dict())
    assert [k for k in keys if k.startswith("prior.")] == ["prior.raw_inputs"]
    assert len({id(p) for p in model.parameters()}) == len(list(model.parameters()))
    assert model.kl_method == "monte_carlo"
    loss, metrics = model.loss({"x": torch.rand(8, 6).round()}, step=0)
    loss.backward()
    assert metrics["kl_analytic"].item() == 0.0
    assert model.prior.raw_inputs.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.encoder.parameters())


LINKS = [("bernoulli", "vectors", "clip"), ("gaussian", "vectors", "identity"),
         ("poisson", "counts", "softplus")]  # fmt: skip
#: the pseudo-inputs' recorded start (init_mean, init_std) by link
STARTS = {"clip": (0.05, 0.01), "identity": (0.0, 1.0), "softplus": (0.0, 1.0)}


@pytest.mark.parametrize(("likelihood", "kind", "link"), LINKS)
def test_auto_link_follows_the_likelihood_and_is_recorded(likelihood, kind, link) -> None:
    model = genlatent.build(vector_spec(likelihood, kind=kind), seed=0)
    mean, std = STARTS[link]
    assert model.spec["prior"]["params"] == {
        "components": K, "link": link, "init_std": std, "init_mean": mean
    }
    again = genlatent.build(model.spec, seed=0)
    assert again.prior.link == link
    torch.testing.assert_close(again.prior.pseudo_inputs, model.prior.pseudo_inputs)
    if link == "softplus":
        assert (model.prior.pseudo_inputs > 0).all()
    if link == "clip":  # near-black starts, in [0, 1], moved by the gradient where inside
        u = model.prior.pseudo_inputs.detach()
        assert 0.0 <= float(u.min()) and float(u.max()) <= 1.0
        assert abs(float(u.mean()) - 0.05) < 0.005


def test_a_model_saved_before_the_clip_link_keeps_its_sigmoid_and_start() -> None:
    spec = vector_spec()
    spec["prior"] = {"name": "vamp", "params": {"components": K, "link": "sigmoid",
                                                "init_std": 1.0}}  # fmt: skip
    model = genlatent.build(spec, seed=0)
    assert model.spec["prior"]["params"]["init_mean"] == 0.0
    raw = model.prior.raw_inputs.detach()
    torch.testing.assert_close(model.prior.pseudo_inputs, torch.sigmoid(raw))
    assert 0.6 < float(raw.std()) < 1.4  # N(0, 1) before the sigmoid, as before issue 16


def test_sample_picks_a_component_and_draws_its_posterior() -> None:
    model = genlatent.build(vector_spec(components=1), seed=0)
    with torch.no_grad():
        q = model.posterior(model.encoder(model.prior.pseudo_inputs))
    z = model.prior.sample(4000)
    assert z.shape == (4000, 2)
    torch.testing.assert_close(z.mean(0), q.mean[0], atol=0.1, rtol=0)
    torch.testing.assert_close(z.std(0), q.stddev[0], atol=0.1, rtol=0.1)
    several = genlatent.build(vector_spec(), seed=0)
    assert several.sample(7).shape == (7, 6)


def test_token_data_and_bad_parameters_are_refused_in_one_line() -> None:
    tokens = {
        "latent_dim": 2,
        "data": {"kind": "tokens", "shape": [5],
                 "vocab": ["<pad>", "<bos>", "<eos>", "<unk>", "C"]},  # fmt: skip
        "prior": "vamp",
    }
    with pytest.raises(SpecError, match="prior 'vamp' needs pseudo-inputs") as info:
        genlatent.build(tokens)
    assert "\n" not in str(info.value)
    for params, word in [({"components": 0}, "components"), ({"link": "tanh"}, "link"),
                         ({"init_std": 0}, "init_std"), ({"init_mean": "x"}, "init_mean"),
                         ({"link": "clip", "init_std": -1.0}, "init_std")]:  # fmt: skip
        with pytest.raises(SpecError, match=word):
            genlatent.build(vector_spec(**params))


@pytest.mark.parametrize("posterior", ["normal", "iaf"])
def test_save_load_round_trip_gives_the_same_prior(posterior, tmp_path) -> None:
    model = genlatent.build(vector_spec(posterior=posterior), seed=0)
    with torch.no_grad():
        model.prior.raw_inputs.add_(torch.randn_like(model.prior.raw_inputs))
    model.save(tmp_path / "m")
    loaded = genlatent.load(tmp_path / "m")
    z = torch.randn(5, 2)
    torch.testing.assert_close(loaded.prior.log_prob(z), model.prior.log_prob(z))
    torch.testing.assert_close(loaded.prior.pseudo_inputs, model.prior.pseudo_inputs)
    loaded.to("cpu")  # .to() reaches the pseudo-inputs and the encoder the prior uses
    assert loaded.prior._host[0] is loaded


def _invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result


def test_cli_trains_vamp_with_iaf_on_the_iwae_bound(tmp_path) -> None:
    rng = np.random.default_rng(0)
    write_h5(tmp_path / "vec.h5", (rng.random((64, 6)) < 0.3).astype(np.float32),
             attrs={"kind": "vectors"})  # fmt: skip
    run = tmp_path / "run"
    _invoke("train", tmp_path / "vec.h5", "--prior", "vamp", "--set", "prior.components=3",
            "--posterior", "iaf", "--set", "posterior.hidden=[8]", "--set",
            "objective.iwae_samples=3", "--set", "encoder.hidden=[8]", "--set",
            "decoder.hidden=[8]", "--latent-dim", 2, "--epochs", 2, "--batch-size", 16,
            "--no-plots", "--out", run)  # fmt: skip
    spec = json.loads((run / "model" / "spec.json").read_text())
    assert spec["prior"] == {"name": "vamp", "params": {"components": 3, "link": "clip",
                                                        "init_std": 0.01, "init_mean": 0.05}}
    assert spec["posterior"]["name"] == "iaf"
    assert spec["objective"]["iwae_samples"] == 3
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(row["train_neg_iwae"]) for row in metrics if "train_neg_iwae" in row)
    assert any("train_neg_iwae" in row for row in metrics)
    out = _invoke("sample", run, "-n", 5, "--out", tmp_path / "s.h5")
    assert out.exit_code == 0
