"""Resolved specs (every parameter recorded), unknown-parameter messages, and likelihoods that
follow the data's values."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.distributions import constraints

import genlatent
from genlatent import registry
from genlatent.cli.main import cli
from genlatent.data import H5Dataset, write_h5
from genlatent.data.values import ValueSummary, describe_support, fits, summarize_values
from genlatent.errors import DataError, SpecError
from genlatent.models import VAE
from genlatent.parts import Likelihood, Prior
from genlatent.spec import PART_KINDS, resolve_spec

VOCAB = ["<pad>", "<bos>", "<eos>", "<unk>", "C", "O"]
SMALL = {"hidden": [8]}
SPECS = {
    "mlp vectors": {"data": {"kind": "vectors", "shape": [6]}, "latent_dim": 2,
                    "encoder": {"name": "mlp", "params": SMALL},
                    "decoder": {"name": "mlp", "params": SMALL}},
    "mlp counts poisson laplace": {
        "data": {"kind": "counts", "shape": [5]}, "latent_dim": 2,
        "encoder": {"name": "mlp", "params": SMALL}, "decoder": {"name": "mlp", "params": SMALL},
        "likelihood": "poisson", "posterior": "laplace",
        "prior": {"name": "laplace", "params": {"learn_scale": True}}},
    "cnn circular gaussian mixture": {
        "data": {"kind": "grids", "shape": [1, 8, 8]}, "latent_dim": 2,
        "encoder": {"name": "cnn", "params": {"channels": [4], "padding": "circular"}},
        "decoder": {"name": "cnn", "params": {"channels": [4], "padding_mode": "circular"}},
        "likelihood": {"name": "gaussian", "params": {"variance": "learned_global"}},
        "prior": {"name": "mixture", "params": {"components": 3}},
        "objective": {"beta": 0.5}},
    "gru tokens": {
        "data": {"kind": "tokens", "shape": [5], "vocab": VOCAB}, "latent_dim": 2,
        "encoder": {"name": "gru", "params": {"hidden_size": 8, "embedding_dim": 4}},
        "decoder": {"name": "gru", "params": {"hidden_size": 8, "embedding_dim": 4}}},
    "ae": {"model": "ae", "data": {"kind": "vectors", "shape": [6]}, "latent_dim": 2,
           "encoder": {"name": "mlp", "params": SMALL},
           "decoder": {"name": "mlp", "params": SMALL}},
}
# condition_dim is set by the spec's "condition" field, never recorded among part params
STRUCTURAL = {"data", "out_features", "latent_dim", "num_params", "condition_dim"}


def keyword_params(cls) -> set[str]:
    return {
        name
        for name, p in inspect.signature(cls).parameters.items()
        if name not in STRUCTURAL and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def vae_objective_defaults() -> dict:
    """Today's VAE objective defaults, read from its signature (others add options)."""
    return {
        name: p.default
        for name, p in inspect.signature(VAE).parameters.items()
        if p.default is not p.empty and name not in ("posterior", "prior")
    }


# --------------------------------------------------------------------------- resolved specs


@pytest.mark.parametrize("name", sorted(SPECS))
def test_resolved_spec_records_every_parameter_and_rebuilds_itself(name):
    model = genlatent.build(SPECS[name], seed=0)
    spec = model.spec
    assert spec["genlatent_spec"] == 2
    json.dumps(spec)  # plain JSON
    used = PART_KINDS if spec["model"] == "vae" else {"encoder": 0, "decoder": 0, "likelihood": 0}
    for field in used:
        cls = registry.get_part(PART_KINDS[field], spec[field]["name"])
        assert set(spec[field]["params"]) == keyword_params(cls), field
    objective = keyword_params(type(model)) - {"encoder", "decoder", "likelihood", "posterior",
                                               "prior"}
    assert set(spec["objective"]) == objective
    again = genlatent.build(spec, seed=0)
    assert again.spec == spec == resolve_spec(SPECS[name])  # resolving is idempotent
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_automatic_choices_are_saved_as_the_values_used():
    spec = genlatent.build(SPECS["cnn circular gaussian mixture"]).spec
    assert spec["encoder"]["params"]["padding_mode"] == "circular"  # the alias, folded in
    assert spec["encoder"]["params"]["padding"] is None
    assert spec["decoder"]["params"]["upsample"] == "nearest"  # chosen for circular padding
    assert spec["likelihood"]["params"] == {"variance": "learned_global", "sigma": 1.0,
                                            "min_sigma": 1e-3}
    assert spec["objective"]["beta"] == 0.5
    assert spec["objective"] == {**vae_objective_defaults(), "beta": 0.5}
    built = genlatent.build({"data": {"kind": "grids", "shape": [1, 8, 8]}})
    zeros = built.spec
    assert zeros["decoder"]["params"]["upsample"] == "transpose"
    for field in ("encoder", "decoder"):  # kernel=None: the kernels the style chose
        assert zeros[field]["params"]["kernel"] == getattr(built, field).geometry.kernels
    counts = genlatent.build(SPECS["mlp counts poisson laplace"]).spec
    vectors = genlatent.build(SPECS["mlp vectors"]).spec
    assert counts["encoder"]["params"]["log1p"] is True
    assert vectors["encoder"]["params"]["log1p"] is False


def test_new_objective_and_part_parameters_are_recorded_without_being_listed(monkeypatch):
    """Options others add later (free bits, a plugin's own parameter) come from the
    constructor signatures: nothing in genlatent.spec lists them."""

    class CapacityVAE(VAE):
        def __init__(self, *, capacity: float = 0.25, **parts):
            super().__init__(**parts)
            self.capacity = capacity

    class StudentT(Prior):
        def __init__(self, latent_dim: int, df: float = 3.0, learn_df: bool = False):
            super().__init__(latent_dim)
            self.df = df

    registry.ensure_loaded()
    registry.models.add("cap_vae", CapacityVAE)
    registry.priors.add("t_test", StudentT)
    try:
        spec = genlatent.build({**SPECS["mlp vectors"], "model": "cap_vae",
                                "prior": {"name": "t_test", "params": {"df": 5.0}},
                                "objective": {"beta": 2.0}}).spec
        assert spec["objective"] == {**vae_objective_defaults(), "capacity": 0.25, "beta": 2.0}
        assert spec["objective"]["kl_warmup_steps"] == 0  # the base class's, behind **parts
        assert spec["prior"] == {"name": "t_test", "params": {"df": 5.0, "learn_df": False}}
        with pytest.raises(SpecError, match=r"model 'cap_vae' objective has no parameter "
                                            r"'capacty'; did you mean 'capacity'\?"):
            genlatent.build({**SPECS["mlp vectors"], "model": "cap_vae",
                             "objective": {"capacty": 1.0}})
    finally:
        registry.models.unregister("cap_vae")
        registry.priors.unregister("t_test")


def test_a_default_that_json_cannot_hold_is_refused():
    class OddPrior(Prior):
        def __init__(self, latent_dim: int, shape: object = object()):
            super().__init__(latent_dim)

        def forward(self):
            raise NotImplementedError

    registry.ensure_loaded()
    registry.priors.add("odd_test", OddPrior)
    try:
        with pytest.raises(SpecError, match=r"prior 'odd_test': parameter 'shape' = .* cannot "
                                            r"be recorded in a model spec"):
            genlatent.build({**SPECS["mlp vectors"], "prior": "odd_test"})
    finally:
        registry.priors.unregister("odd_test")


def test_normalize_spec_of_format1_spells_out_the_format1_defaults():
    spec = genlatent.normalize_spec({"genlatent_spec": 1, "data": {"kind": "grids",
                                     "shape": [1, 8, 8]}, "decoder": {"name": "cnn",
                                     "params": {"padding": "circular"}}})
    assert spec["genlatent_spec"] == 2
    assert spec["decoder"]["params"]["upsample"] == "nearest"
    assert spec["decoder"]["params"]["channels"] == [32, 64]
    assert spec["objective"] == {"beta": 1.0, "kl_warmup_steps": 0, "kl_samples": 1}  # frozen
    with pytest.raises(SpecError, match="spec format 9 was written by a newer genlatent"):
        genlatent.normalize_spec({"genlatent_spec": 9, "data": SPECS["ae"]["data"]})


# --------------------------------------------------------------------------- unknown parameters


def test_unknown_part_parameter_says_did_you_mean_and_lists_the_accepted():
    spec = {**SPECS["mlp vectors"], "prior": {"name": "mixture", "params": {"componets": 10}}}
    with pytest.raises(SpecError) as err:
        genlatent.build(spec)
    assert str(err.value) == (
        "prior 'mixture' has no parameter 'componets'; did you mean 'components'? "
        "Accepted: components, learn_weights, scale, spread"
    )
    with pytest.raises(SpecError, match=r"^encoder 'mlp' has no parameter 'zzz'; Accepted: "
                                        r"activation, dropout, hidden, log1p, norm$"):
        genlatent.build({**SPECS["mlp vectors"], "encoder": {"name": "mlp",
                                                             "params": {"zzz": 1}}})
    with pytest.raises(SpecError, match=r"^model 'ae' objective has no parameter 'beta'; "
                                        r"Accepted: none$"):
        genlatent.build({**SPECS["ae"], "objective": {"beta": 1.0}})
    with pytest.raises(SpecError, match=r"encoder 'mlp' has no parameter 'data'"):
        genlatent.build({**SPECS["mlp vectors"], "encoder": {"name": "mlp",
                                                             "params": {"data": 1}}})


def test_cli_set_with_a_misspelt_parameter_is_one_line(tmp_path):
    write_h5(tmp_path / "vec.h5", (np.random.default_rng(0).random((40, 6)) < 0.5)
             .astype(np.float32), attrs={"kind": "vectors"})
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "vec.h5"), "--prior", "mixture",
                                      "--set", "prior.componets=10", "--epochs", "1",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["Error: prior 'mixture' has no parameter 'componets'; did you mean "
                     "'components'? Accepted: components, learn_weights, scale, spread"]
    assert not (tmp_path / "run" / "model").exists()


# --------------------------------------------------------------------------- values


def write_values(path, x, kind="vectors"):
    write_h5(path, x, attrs={"kind": kind}, shuffle=False)
    return H5Dataset(path, in_memory=False)


def test_summary_streams_in_blocks_and_matches_the_array(tmp_path):
    x = np.random.default_rng(1).normal(0, 1.3, (103, 7)).astype(np.float32)
    data = write_values(tmp_path / "sines.h5", x)
    calls = []
    original = data.read
    data.read = lambda rows: calls.append(rows) or original(rows)  # count the reads
    summary = summarize_values(data, block_rows=10)
    assert len(calls) == 11 and all(c.stop - c.start <= 10 for c in calls)
    assert summary == ValueSummary(source=f"{tmp_path / 'sines.h5'}:x", count=x.size,
                                   min=float(x.min()), max=float(x.max()), integer=False)
    assert summarize_values(data) is summary and len(calls) == 11  # cached per dataset
    del data.read
    train, val = data.split(0.5)  # a split is summarised on its own rows
    assert summarize_values(val).max == float(x[len(train):].max())
    assert summarize_values(torch.tensor([[0, 3], [2, 1]])).integer
    from genlatent.data.arrays import ArrayDataset  # any reader: read(slice) and len()

    arrays = ArrayDataset(np.arange(12.0).reshape(6, 2) - 3, kind="vectors")
    assert summarize_values(arrays, block_rows=4) == ValueSummary(
        source="<array>:x", count=12, min=-3.0, max=8.0, integer=True
    )


def test_summary_of_a_csr_h5ad_is_read_block_by_block(tmp_path):
    import h5py

    x = np.random.default_rng(0).poisson(1.0, (50, 12)).astype(np.float32)
    x[x < 1] = 0
    with h5py.File(tmp_path / "cells.h5ad", "w") as f:  # anndata's CSR layout
        g = f.create_group("X")
        g.attrs["encoding-type"], g.attrs["shape"] = "csr_matrix", np.array(x.shape)
        g["data"], g["indices"] = x[x != 0], np.nonzero(x)[1].astype(np.int32)
        g["indptr"] = np.concatenate([[0], np.cumsum((x != 0).sum(1))]).astype(np.int64)
    data = genlatent.data.open_dataset(tmp_path / "cells.h5ad", in_memory=False)
    summary = summarize_values(data, block_rows=7)
    assert (summary.min, summary.max, summary.integer) == (0.0, float(x.max()), True)
    assert summary.count == x.size and summary.source.endswith("cells.h5ad:X")


def test_supports_and_their_names():
    real = ValueSummary("a", 4, -1.5, 2.0, False)
    unit = ValueSummary("b", 4, 0.0, 1.0, False)
    counts = ValueSummary("c", 4, 0.0, 9.0, True)
    assert fits(constraints.real, real) and not fits(constraints.unit_interval, real)
    assert fits(constraints.unit_interval, unit) and not fits(constraints.nonnegative_integer, unit)
    assert fits(constraints.nonnegative_integer, counts)
    assert describe_support(constraints.unit_interval) == "[0, 1]"
    assert describe_support(constraints.nonnegative_integer) == "integers >= 0"
    assert real.describe() == "values in [-1.5, 2], not all integers"


def test_default_likelihood_follows_the_values(tmp_path):
    base = {"data": {"kind": "vectors", "shape": [7]}, "latent_dim": 2,
            "encoder": {"name": "mlp", "params": SMALL},
            "decoder": {"name": "mlp", "params": SMALL}}
    sines = write_values(tmp_path / "sines.h5", np.sin(np.arange(70.0)).reshape(10, 7) * 1.3)
    pixels = write_values(tmp_path / "pix.h5", np.linspace(0, 1, 70).reshape(10, 7))
    assert genlatent.build(base, values=sines).spec["likelihood"]["name"] == "gaussian"
    assert genlatent.build(base, values=pixels).spec["likelihood"]["name"] == "bernoulli"
    assert genlatent.build(base).spec["likelihood"]["name"] == "bernoulli"  # values unknown
    counts = {**base, "data": {"kind": "counts", "shape": [7]}}
    summary = ValueSummary("n.h5:x", 70, 0.0, 40.0, True)
    assert genlatent.build(counts, values=summary).spec["likelihood"]["name"] == (
        "negative_binomial"
    )


def test_a_likelihood_the_values_leave_is_refused_in_one_line(tmp_path):
    base = {"data": {"kind": "vectors", "shape": [7]}, "latent_dim": 2, "likelihood": "bernoulli"}
    sines = write_values(tmp_path / "sines.h5", np.sin(np.arange(70.0)).reshape(10, 7) * 1.3)
    with pytest.raises(DataError) as err:
        genlatent.build(base, values=sines)
    lo, hi = np.float32(np.sin(np.arange(70.0)) * 1.3).min(), (np.sin(np.arange(70.0)) * 1.3).max()
    assert str(err.value) == (
        f"{tmp_path / 'sines.h5'}:x: values in [{lo:.4g}, {np.float32(hi):.4g}], not all "
        "integers, outside the support of likelihood 'bernoulli' ([0, 1]); likelihoods that fit "
        "vectors data like this: gaussian"
    )
    counts = {"data": {"kind": "counts", "shape": [7]}, "latent_dim": 2}
    for name, summary in [("poisson", ValueSummary("n.h5:x", 70, -1.0, 4.0, True)),
                          ("negative_binomial", ValueSummary("n.h5:x", 70, 0.0, 4.5, False))]:
        with pytest.raises(DataError, match=rf"^n\.h5:x: .* likelihood '{name}' \(integers >= 0\)"
                                            r"; likelihoods that fit counts data like this: none$"):
            genlatent.build({**counts, "likelihood": name}, values=summary)


def test_a_plugin_likelihood_declares_its_support_and_takes_part(tmp_path):
    class Positive(Likelihood):
        kinds = frozenset({"vectors"})
        support = constraints.positive

    registry.ensure_loaded()
    registry.likelihoods.add("positive_test", Positive)
    try:
        base = {"data": {"kind": "vectors", "shape": [3]}, "likelihood": "bernoulli"}
        summary = ValueSummary("p.h5:x", 9, 0.5, 7.0, False)
        with pytest.raises(DataError, match="likelihoods that fit vectors data like this: "
                                            "gaussian, positive_test$"):
            genlatent.build(base, values=summary)
        with pytest.raises(DataError, match=r"likelihood 'positive_test' \(values > 0\)"):
            genlatent.build({**base, "likelihood": "positive_test"},
                            values=ValueSummary("p.h5:x", 9, -2.0, 7.0, False))
    finally:
        registry.likelihoods.unregister("positive_test")
