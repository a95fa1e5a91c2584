"""The run's pictures, one function each, and interpolation between pairs of rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import genlatent
from genlatent.analysis import inference, report
from genlatent.data import ArrayDataset, H5Dataset, write_h5


@pytest.fixture(scope="module")
def model_and_data() -> tuple[object, ArrayDataset]:
    x = (np.random.default_rng(0).random((20, 6)) < 0.4).astype(np.float32)
    data = ArrayDataset(x, {"y": np.arange(20) % 3}, path="mem")
    model = genlatent.build({"latent_dim": 2, "data": data.spec.to_dict()}, seed=0)
    return model.eval(), data


def test_interpolate_pairs_runs_between_the_codes_of_the_rows(model_and_data) -> None:
    model, data = model_and_data
    ends = np.array([[4, 1], [1, 7], [4, 4]])
    out = inference.interpolate_pairs(model, data, ends, steps=5)
    assert out["z"].shape == (15, 2) and out["x"].shape == (15, 6)
    codes = inference.encode_dataset(model, data)["mean"]
    paths = out["z"].reshape(3, 5, 2)
    np.testing.assert_allclose(paths[:, 0], codes[ends[:, 0]], atol=1e-6)
    np.testing.assert_allclose(paths[:, -1], codes[ends[:, 1]], atol=1e-6)
    np.testing.assert_allclose(paths[2], np.repeat(codes[[4]], 5, axis=0), atol=1e-6)
    decoded = inference.decode_codes(model, codes[[1]])["x"]
    np.testing.assert_allclose(out["x"][4], decoded[0], atol=1e-6)


def test_random_pairs_are_distinct_rows_from_the_seed() -> None:
    ends = inference.random_pairs(5, 50, seed=3)
    assert ends.shape == (50, 2) and (ends[:, 0] != ends[:, 1]).all()
    assert ends.min() >= 0 and ends.max() < 5
    assert np.array_equal(ends, inference.random_pairs(5, 50, seed=3))
    with pytest.raises(genlatent.GenlatentError, match="at least 2 rows"):
        inference.random_pairs(1, 2, seed=0)


def test_each_picture_has_its_function_and_make_plots_draws_them(
    model_and_data, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    model, data = model_and_data
    assert report.plot_curves(tmp_path / "no-run", tmp_path) is None  # no metrics: no curves
    assert report.plot_latent(model, data, tmp_path, label="y").name == "latent.png"
    assert report.plot_samples(model, tmp_path, samples=8).name == "samples.png"
    written = report.make_plots(tmp_path / "no-run", tmp_path / "all", model, data, pairs=2)
    assert [p.name for p in written] == [
        "latent.png", "reconstructions.png", "interpolations.png", "samples.png"
    ]
    assert all(p.stat().st_size > 0 for p in written)
    torch.manual_seed(1)
    ae = genlatent.build({"model": "ae", "latent_dim": 2, "data": data.spec.to_dict()}, seed=0)
    assert [p.name for p in report.make_plots(tmp_path, tmp_path / "ae", ae)] == []


def test_class_names_come_from_the_reader(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((6, 3)).astype(np.float32)
    path = write_h5(
        tmp_path / "n.h5", x, labels={"y": np.array([0, 1, 2, 0, 1, 2])},
        label_attrs={"y": {"label_names": ["cat", "dog", "eel"]}}, shuffle=False,
    )
    assert report.label_names(H5Dataset(path, labels="y"), "y") == ["cat", "dog", "eel"]
    assert report.label_names(ArrayDataset(x, {"y": np.zeros(6)}), "y") is None
