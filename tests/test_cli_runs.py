"""The run API behind ``genlatent train``: genlatent.train / load_run / Run, and seeded()."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import genlatent
from genlatent.data import write_h5
from genlatent.runs import open_data, prepare, seeded

SMALL = ["encoder.hidden=[8]", "decoder.hidden=[8]"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(1)
    write_h5(folder / "vec.h5", (rng.random((50, 6)) < 0.4).astype(np.float32),
             labels={"y": rng.integers(0, 2, 50)}, attrs={"kind": "vectors"})
    return folder / "vec.h5"


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> genlatent.Run:
    out = tmp_path_factory.mktemp("runs") / "api"
    return genlatent.train(data=data, out=out, set=SMALL, latent_dim=2, epochs=2,
                           batch_size=16, seed=3, progress=False, plots=False)


def test_train_returns_the_run_and_load_run_reads_it_back(run, data) -> None:
    assert [r["epoch"] for r in run.metrics] == [1, 2]
    assert run.config["train"] == {"epochs": 2, "batch_size": 16, "seed": 3, "progress": False}
    assert run.config["latent_dim"] == 2 and run.config["data"]["path"] == str(data)
    assert run.config["encoder"] == {"name": "mlp", "params": {"hidden": [8]}}
    again = genlatent.load_run(run.path, device="cpu")
    assert again.config == run.config and again.metrics == run.metrics
    assert again.spec == run.spec and again.seed == 3
    x = genlatent.H5Dataset(data).read(slice(None))["x"]
    codes = again.encode(data)
    with torch.no_grad():
        expected = again.model.encode_mean(x[codes["index"]]).numpy()
    np.testing.assert_allclose(codes["mean"], expected, rtol=1e-5, atol=1e-6)
    assert again.reconstruct(data, limit=3)["x"].shape == (3, 6)


def test_flags_layer_over_set_and_the_trainer_options_are_checked(data, tmp_path) -> None:
    plan = prepare({"latent_dim": 5, "train": {"lr": 0.5}}, data=data, out=tmp_path / "r",
                   set=["train.lr=0.1", "latent_dim=4"], lr=0.2)
    assert plan.config["train"] == {"lr": 0.2, "seed": 0} and plan.spec["latent_dim"] == 4
    assert plan.seed == 0 and not (tmp_path / "r").exists()  # prepare writes nothing
    with pytest.raises(genlatent.GenlatentError, match="train.epohcs; did you mean 'epochs'"):
        prepare(data=data, out=tmp_path / "r", epohcs=3)
    with pytest.raises(genlatent.GenlatentError, match="no training data"):
        prepare(out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_weights_follow_the_run_seed_not_the_callers_rng(data, tmp_path) -> None:
    torch.manual_seed(1)
    a = prepare(data=data, out=tmp_path / "a", set=SMALL, seed=7).model.state_dict()
    torch.manual_seed(2)
    b = prepare(data=data, out=tmp_path / "b", set=SMALL, seed=7).model.state_dict()
    c = prepare(data=data, out=tmp_path / "c", set=SMALL, seed=8).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_an_existing_run_is_refused_before_anything_is_written(run, data) -> None:
    before = sorted(p.name for p in run.path.iterdir())
    metrics = (run.path / "metrics.jsonl").read_text()
    with pytest.raises(genlatent.GenlatentError, match="already holds a run"):
        genlatent.train(data=data, out=run.path, epochs=1)
    assert sorted(p.name for p in run.path.iterdir()) == before
    assert (run.path / "metrics.jsonl").read_text() == metrics


def test_one_validation_rule_for_training_and_pictures(run, data, tmp_path) -> None:
    train, val = run.data(labels=True)
    assert (len(train), len(val)) == (45, 5) and "y" in val.labels  # the last 10 % of rows
    config = json.loads(json.dumps(run.config))
    config["data"].update(val=str(data), val_fraction=0.1)
    train, val = open_data(config)
    assert (len(train), len(val)) == (50, 50)  # a --val file wins over the fraction
    config["data"].update(val=None, val_fraction=0)
    assert open_data(config)[1] is None


def test_seeded_helpers_repeat_and_leave_the_callers_rng_alone(run) -> None:
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    one = run.sample(5, seed=2, draw=True)
    assert torch.equal(torch.get_rng_state(), states[0])
    np.testing.assert_array_equal(np.random.get_state()[1], states[1])
    assert random.getstate() == states[2]
    again = run.sample(5, seed=2, draw=True)
    other = run.sample(5, seed=3, draw=True)
    np.testing.assert_array_equal(one["x"], again["x"])
    assert not np.array_equal(one["z"], other["z"])
    with seeded(4):
        first = torch.rand(3)
    with seeded(4):
        assert torch.equal(torch.rand(3), first)


def test_a_bare_model_folder_is_a_run_without_config(tmp_path) -> None:
    folder = tmp_path / "m"
    genlatent.build({"latent_dim": 2, "data": {"kind": "vectors", "shape": [6]}}).save(folder)
    bare = genlatent.load_run(folder, device="cpu")
    assert bare.config is None and bare.metrics == [] and bare.model.latent_dim == 2
    with pytest.raises(genlatent.GenlatentError, match="no config.json"):
        bare.data()


def test_the_likelihood_follows_the_values_of_the_data(tmp_path) -> None:
    rng = np.random.default_rng(2)
    write_h5(tmp_path / "real.h5", rng.normal(0, 1.3, (40, 5)).astype(np.float32),
             attrs={"kind": "vectors"})
    plan = prepare(data=tmp_path / "real.h5", out=tmp_path / "r", set=SMALL)
    assert plan.spec["likelihood"]["name"] == "gaussian"
    assert plan.config["likelihood"]["name"] == "gaussian"  # recorded in config.json
    with pytest.raises(genlatent.GenlatentError, match="real.h5"):
        prepare(data=tmp_path / "real.h5", out=tmp_path / "r", likelihood="bernoulli")
    assert not (tmp_path / "r").exists()
