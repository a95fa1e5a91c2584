"""Checked-in model folders (spec formats 1 and 2) load and reproduce their outputs bit for bit.

The folders and their ``.npz`` outputs were written by ``tests/fixtures/make_models.py``: format 1
by the code before resolved specs, format 2 by today's. A release that changes what an old model
file computes (a default, a layer, a parameter's meaning) fails here.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import genlatent
from genlatent import registry
from genlatent.distributions.likelihoods import GaussianLikelihood
from genlatent.errors import CheckpointError
from genlatent.networks.mlp import MLPDecoder, MLPEncoder
from genlatent.serialization import ModelVersionWarning

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import make_models  # noqa: E402

FOLDERS = [
    pytest.param(fmt, name, id=f"{fmt}-{name}")
    for fmt in ("format1", "format2")
    for name in make_models.SPECS
]


def load_quietly(path: Path) -> genlatent.models.VAE:
    """Load a checked-in model; the version that saved it is this one, so no version warning.
    (A "saved without" warning, for a parameter added since, is allowed: whether the old model
    still computes the same is what the stored outputs decide.)"""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = genlatent.load(path)
    assert not [w for w in caught if "saved by genlatent" in str(w.message)]
    return model


def reproduces(model, stored: dict[str, np.ndarray]) -> dict[str, bool]:
    inputs = {k: stored[k] for k in ("x", "lengths") if k in stored}
    out = make_models.outputs(model, inputs)
    return {key: np.array_equal(value, stored[key]) for key, value in out.items()}


def stored(fmt: str, name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "models" / fmt / f"{name}.npz") as f:
        return dict(f)


@pytest.mark.parametrize(("fmt", "name"), FOLDERS)
def test_checked_in_model_reproduces_its_outputs_bit_for_bit(fmt, name):
    model = load_quietly(FIXTURES / "models" / fmt / name)
    assert reproduces(model, stored(fmt, name)) == {
        "encode_mean": True,
        "decoder_params": True,
        "reconstruction": True,
        "kl": True,
    }
    assert model.spec["genlatent_spec"] == 2  # format 1 is resolved on load


@pytest.mark.parametrize("name", list(make_models.SPECS))
def test_format1_resolves_to_what_format2_records(name):
    """The frozen format-1 defaults give the same resolved spec as today's build: nothing in a
    default has changed yet (when one does, this test shows which; the models still load)."""
    old = load_quietly(FIXTURES / "models" / "format1" / name).spec
    new = load_quietly(FIXTURES / "models" / "format2" / name).spec
    assert old == new


def test_saved_spec_records_every_parameter():
    spec = json.loads((FIXTURES / "models" / "format2" / "cnn_bernoulli" / "spec.json").read_text())
    assert spec["genlatent_spec"] == 2
    assert spec["decoder"]["params"]["upsample"] == "transpose"  # the automatic choice, made
    assert spec["encoder"]["params"]["padding_mode"] == "zeros"
    assert spec["encoder"]["params"]["activation"] == "relu"
    assert spec["objective"] == {"beta": 1.0, "kl_warmup_steps": 0, "kl_samples": 1}  # as saved
    counts = json.loads((FIXTURES / "models" / "format2" / "mlp_counts" / "spec.json").read_text())
    assert counts["encoder"]["params"]["log1p"] is True
    assert counts["likelihood"]["params"] == {"link": "exp", "theta": 1.0}


class HalfSigmaGaussian(GaussianLikelihood):
    """The Gaussian likelihood as a later release might ship it: another default sigma."""

    def __init__(self, data, variance="fixed", sigma=0.5, min_sigma=1e-3):
        super().__init__(data, variance, sigma, min_sigma)


@pytest.fixture
def changed_defaults(monkeypatch):
    """Change defaults that keep every shape: Gaussian sigma (in the registry) and the MLP's
    activation (in the constructors)."""
    registry.ensure_loaded()
    registry.likelihoods.add("gaussian", HalfSigmaGaussian, replace=True)
    monkeypatch.setitem(MLPEncoder.__init__.__kwdefaults__, "activation", "tanh")
    monkeypatch.setitem(MLPDecoder.__init__.__kwdefaults__, "activation", "tanh")
    yield
    registry.likelihoods.add("gaussian", GaussianLikelihood, replace=True)


@pytest.mark.parametrize("fmt", ["format1", "format2"])
def test_changed_defaults_leave_an_old_model_unaffected(changed_defaults, fmt):
    folder = FIXTURES / "models" / fmt / "mlp_gaussian"
    # the new defaults are live: a model built from what the user typed picks them up ...
    typed = make_models.SPECS["mlp_gaussian"]
    fresh = genlatent.build(typed, seed=0)
    assert fresh.spec["likelihood"]["params"]["sigma"] == 0.5
    assert fresh.spec["encoder"]["params"]["activation"] == "tanh"
    # ... and the saved model does not
    model = load_quietly(folder)
    assert model.spec["likelihood"]["params"]["sigma"] == 1.0
    assert model.spec["encoder"]["params"]["activation"] == "relu"
    assert all(reproduces(model, stored(fmt, "mlp_gaussian")).values())
    # the same weights under the new defaults would compute something else
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    assert not any(reproduces(fresh, stored(fmt, "mlp_gaussian")).values())


def copy_fixture(tmp_path: Path, fmt: str, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / "models" / fmt / name, target)
    return target


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_model_from_another_version_loads_with_a_warning(tmp_path):
    folder = copy_fixture(tmp_path, "format2", "mlp_gaussian")
    edit_json(folder / "meta.json", lambda m: m.update(genlatent_version="0.0.7"))
    with pytest.warns(ModelVersionWarning, match=r"saved by genlatent 0\.0\.7 \(spec format 2\)"):
        model = genlatent.load(folder)
    assert all(reproduces(model, stored("format2", "mlp_gaussian")).values())


def test_parameter_missing_from_a_saved_spec_is_named(tmp_path):
    folder = copy_fixture(tmp_path, "format2", "mlp_gaussian")
    edit_json(folder / "spec.json", lambda s: s["likelihood"]["params"].pop("min_sigma"))
    with pytest.warns(ModelVersionWarning, match=r"likelihood 'gaussian' was saved without "
                      r"min_sigma; using today's defaults \(min_sigma=0\.001\)"):
        genlatent.load(folder)


def test_parameter_unknown_today_refuses_the_model(tmp_path):
    folder = copy_fixture(tmp_path, "format2", "mlp_gaussian")
    edit_json(folder / "spec.json", lambda s: s["prior"]["params"].update(skew=2.0))
    with pytest.raises(CheckpointError, match="prior 'standard_normal' has no parameter 'skew'"):
        genlatent.load(folder)


def test_spec_from_a_newer_format_is_refused(tmp_path):
    folder = copy_fixture(tmp_path, "format2", "mlp_gaussian")
    edit_json(folder / "spec.json", lambda s: s.update(genlatent_spec=3))
    with pytest.raises(CheckpointError, match="spec format 3 was written by a newer genlatent"):
        genlatent.load(folder)


def test_info_prints_the_resolved_architecture(tmp_path):
    from click.testing import CliRunner

    from genlatent.cli.main import cli

    def info(*args):
        result = CliRunner().invoke(cli, ["info", *map(str, args)])
        assert result.exit_code == 0, result.output
        return result.stdout

    text = info(FIXTURES / "models" / "format1" / "cnn_bernoulli")
    assert "spec format 1 (resolved against the format-1 defaults), saved by genlatent" in text
    assert "decoder:    cnn, 381 parameters" in text
    assert 'padding_mode="zeros"' in text and 'upsample="transpose"' in text
    assert "objective:  beta=1.0 " in text and "kl_warmup_steps=0" in text
    assert "parameters: 637 in all" in text
    folder = copy_fixture(tmp_path, "format2", "mlp_gaussian")
    edit_json(folder / "meta.json", lambda m: m.update(genlatent_version="0.0.7"))
    text = info(folder)
    assert "spec format 2, saved by genlatent 0.0.7" in text
    assert "likelihood: gaussian, 0 parameters" in text
    assert 'min_sigma=0.001 sigma=1.0 variance="fixed"' in text
    assert "note: " in text and "saved by genlatent 0.0.7" in text
    summary = json.loads(info(folder, "--json"))
    assert summary["architecture"]["parameters"]["encoder"] == 6 * 8 + 8 + 8 * 4 + 4
    assert summary["architecture"]["resolved_spec"]["encoder"]["params"]["log1p"] is False
    edit_json(folder / "spec.json", lambda s: s["prior"]["params"].update(skew=2.0))
    assert "architecture: cannot load the model" in info(folder)


class ShiftedGaussian(GaussianLikelihood):
    """A later Gaussian likelihood with a new parameter whose default changes the output."""

    legacy_defaults = {"shift": 0.0}  # what models saved before 'shift' existed computed

    def __init__(self, data, variance="fixed", sigma=1.0, min_sigma=1e-3, shift=0.5):
        super().__init__(data, variance, sigma, min_sigma)
        self.shift = shift

    def loc_scale(self, params):
        loc, scale = super().loc_scale(params)
        return loc + self.shift, scale


@pytest.mark.parametrize("fmt", ["format1", "format2"])
def test_a_parameter_added_later_takes_its_legacy_value_for_old_models(fmt, monkeypatch):
    registry.ensure_loaded()
    registry.likelihoods.add("gaussian", ShiftedGaussian, replace=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = genlatent.load(FIXTURES / "models" / fmt / "mlp_gaussian")
        assert not [w for w in caught if "shift" in str(w.message)]  # the legacy value is used
        assert model.spec["likelihood"]["params"]["shift"] == 0.0
        assert all(reproduces(model, stored(fmt, "mlp_gaussian")).values())
        fresh = genlatent.build(make_models.SPECS["mlp_gaussian"])
        assert fresh.spec["likelihood"]["params"]["shift"] == 0.5  # new models: the new default
        monkeypatch.setattr(ShiftedGaussian, "legacy_defaults", {})
        with pytest.warns(ModelVersionWarning, match=r"likelihood 'gaussian' was saved without "
                          r"shift; using today's defaults \(shift=0\.5\)"):
            genlatent.load(FIXTURES / "models" / fmt / "mlp_gaussian")
    finally:
        registry.likelihoods.add("gaussian", GaussianLikelihood, replace=True)
