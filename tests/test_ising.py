"""The Ising recipe against exact results (Onsager) and its HDF5 file format."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("scipy")

ROOT = Path(__file__).resolve().parents[1]


def _load_recipe():
    spec = importlib.util.spec_from_file_location("ising_recipe", ROOT / "datasets" / "ising.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ising = _load_recipe()
TEMPS = np.array([1.5, 2.0, 3.0, 4.0])


@pytest.fixture(scope="module")
def samples():
    # L=16, 400 configurations per temperature from 8 chains each: about a second.
    return ising.simulate(
        16, TEMPS, 400, chains_per_temperature=8, equilibrate=100, decorrelate=4, seed=1
    )


def _at(result, key, t):
    return result[key][result["temperature"] == np.float32(t)]


def test_onsager_closed_forms():
    assert ising.TC == pytest.approx(2.269185, abs=1e-6)
    assert ising.onsager_magnetisation(2.0) == pytest.approx(0.911319, abs=1e-5)
    assert ising.onsager_magnetisation(3.0) == 0.0
    assert ising.onsager_energy(ising.TC) == pytest.approx(-np.sqrt(2.0), abs=1e-6)
    # Deep in the ordered phase the energy goes to -2 per site.
    assert ising.onsager_energy(0.5) == pytest.approx(-2.0, abs=1e-6)


@pytest.mark.parametrize("t", [1.5, 2.0])
def test_ordered_phase_magnetisation_matches_onsager(samples, t):
    abs_m = np.abs(_at(samples, "magnetisation", t)).mean()
    assert abs_m == pytest.approx(ising.onsager_magnetisation(t), abs=0.01)


def test_cluster_updates_sample_both_signs_below_tc(samples):
    m = _at(samples, "magnetisation", 1.5)
    assert 0.2 < (m > 0).mean() < 0.8


def test_disordered_phase_has_small_magnetisation(samples):
    assert np.abs(_at(samples, "magnetisation", 4.0)).mean() < 0.2
    assert abs(_at(samples, "magnetisation", 4.0).mean()) < 0.03


@pytest.mark.parametrize("t", TEMPS)
def test_energy_matches_onsager(samples, t):
    assert _at(samples, "energy", t).mean() == pytest.approx(ising.onsager_energy(t), abs=0.015)


def test_temperature_grid_is_in_range_and_denser_near_tc():
    grid = ising.temperature_grid(32)
    assert len(grid) == 32
    assert grid[0] == 1.0 and grid[-1] == 4.0
    assert np.all(np.diff(grid) > 0)
    near = np.sum(np.abs(grid - ising.TC) < 0.5)
    assert near > 32 / 3  # an even grid would put about 1/3 of the points there


def test_h5_file_layout_and_labels_agree_with_spins(tmp_path):
    result = ising.simulate(
        8, [1.5, 3.5], 20, chains_per_temperature=2, equilibrate=5, decorrelate=1, seed=3
    )
    path = ising.write_h5(tmp_path / "ising.h5", result, seed=3, equilibrate=5)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file
    with h5py.File(path, "r") as f:
        x = f["x"][:]
        assert x.shape == (40, 1, 8, 8) and x.dtype == np.uint8
        assert set(np.unique(x)) <= {0, 1}
        assert f["x"].chunks is None and f["x"].compression is None
        assert f.attrs["L"] == 8 and f.attrs["seed"] == 3 and f.attrs["sweeps"] == 15
        t, m, e = f["temperature"][:], f["magnetisation"][:], f["energy"][:]
    s = 2.0 * x[:, 0].astype(np.float64) - 1.0
    np.testing.assert_allclose(m, s.mean(axis=(1, 2)), atol=1e-6)
    e_from_x = -(s * (np.roll(s, -1, 1) + np.roll(s, -1, 2))).mean(axis=(1, 2))
    np.testing.assert_allclose(e, e_from_x, atol=1e-6)
    assert sorted(np.unique(t).tolist()) == [1.5, 3.5]
    assert not np.all(np.diff(t) >= 0)  # rows are shuffled, not in temperature order


def test_same_seed_same_configurations():
    kw = dict(chains_per_temperature=2, equilibrate=3, decorrelate=1)
    a = ising.simulate(8, [2.0, 3.0], 6, seed=7, **kw)
    b = ising.simulate(8, [2.0, 3.0], 6, seed=7, **kw)
    c = ising.simulate(8, [2.0, 3.0], 6, seed=8, **kw)
    np.testing.assert_array_equal(a["spins"], b["spins"])
    assert not np.array_equal(a["spins"], c["spins"])


def test_sample_file_is_valid():
    path = ROOT / "datasets" / "samples" / "ising_L16_small.h5"
    if not path.exists():
        pytest.skip("sample file not generated")
    with h5py.File(path, "r") as f:
        assert f["x"].shape[1:] == (1, 16, 16) and f["x"].dtype == np.uint8
        assert len(f["temperature"]) == len(f["magnetisation"]) == f["x"].shape[0]


def test_genlatent_reads_the_file_as_binary_grids_with_labels(tmp_path):
    from genlatent.data import open_dataset

    result = ising.simulate(
        8, [1.5, 3.5], 10, chains_per_temperature=2, equilibrate=2, decorrelate=1, seed=0
    )
    path = ising.write_h5(tmp_path / "ising.h5", result, seed=0)
    ds = open_dataset(path, labels=True)
    assert ds.spec.kind == "grids" and ds.spec.shape == (1, 8, 8)
    assert set(ds.labels) == {"temperature", "magnetisation", "energy"}
    with h5py.File(path, "r") as f:
        raw, t = f["x"][:], f["temperature"][:]
    batch = ds.read(np.arange(len(raw)))
    # Read as {0, 1} floats (scale 1), not divided by 255 like pixels.
    np.testing.assert_array_equal(batch["x"].numpy(), raw.astype(np.float32))
    np.testing.assert_allclose(batch["labels"]["temperature"].numpy(), t)
