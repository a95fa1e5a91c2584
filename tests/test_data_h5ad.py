"""AnnData .h5ad files (written by hand in anndata's on-disk layout): dense, CSR, obs labels."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from genlatent import registry
from genlatent.data import H5adDataset, H5Dataset, make_loader, open_dataset
from genlatent.errors import DataError

N_OBS, N_VARS = 50, 12


def counts_matrix() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.poisson(1.0, size=(N_OBS, N_VARS)).astype(np.float32)
    x[rng.random((N_OBS, N_VARS)) < 0.5] = 0  # sparse-ish
    x[3] = 0  # an empty row
    return x


def strings(f, name, values):
    ds = f.create_dataset(name, data=np.array(values, dtype=h5py.string_dtype()))
    ds.attrs["encoding-type"] = "string-array"
    ds.attrs["encoding-version"] = "0.2.0"
    return ds


def write_h5ad(path, x, sparse: bool, fmt: str = "csr"):
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        if sparse:
            g = f.create_group("X")
            major = x if fmt == "csr" else x.T
            indptr = [0]
            indices, data = [], []
            for row in major:
                nz = np.flatnonzero(row)
                indices.extend(nz.tolist())
                data.extend(row[nz].tolist())
                indptr.append(len(indices))
            g.attrs["encoding-type"] = f"{fmt}_matrix"
            g.attrs["encoding-version"] = "0.1.0"
            g.attrs["shape"] = np.array(x.shape)
            g["data"] = np.array(data, np.float32)
            g["indices"] = np.array(indices, np.int32)
            g["indptr"] = np.array(indptr, np.int64)
        else:
            f["X"] = x
            f["X"].attrs["encoding-type"] = "array"
            f["X"].attrs["encoding-version"] = "0.2.0"
        obs = f.create_group("obs")
        obs.attrs["encoding-type"] = "dataframe"
        obs.attrs["encoding-version"] = "0.2.0"
        obs.attrs["_index"] = "_index"
        obs.attrs["column-order"] = np.array(["cell_type", "n_counts"], dtype=h5py.string_dtype())
        strings(obs, "_index", [f"cell{i}" for i in range(N_OBS)])
        cat = obs.create_group("cell_type")
        cat.attrs["encoding-type"] = "categorical"
        cat.attrs["encoding-version"] = "0.2.0"
        cat.attrs["ordered"] = False
        cat["codes"] = (np.arange(N_OBS) % 3).astype(np.int8)
        strings(cat, "categories", ["B cell", "T cell", "NK"])
        obs["n_counts"] = x.sum(axis=1)
        obs["n_counts"].attrs["encoding-type"] = "array"
        obs["n_counts"].attrs["encoding-version"] = "0.2.0"
        strings(obs, "donor", ["d2", "d1"] * (N_OBS // 2))
        nullable = obs.create_group("n_genes")
        nullable.attrs["encoding-type"] = "nullable-integer"
        nullable.attrs["encoding-version"] = "0.1.0"
        nullable["values"] = np.arange(N_OBS)
        nullable["mask"] = np.arange(N_OBS) == 4
        var = f.create_group("var")
        var.attrs["encoding-type"] = "dataframe"
        var.attrs["encoding-version"] = "0.2.0"
        var.attrs["_index"] = "_index"
        var.attrs["column-order"] = np.array([], dtype=h5py.string_dtype())
        strings(var, "_index", [f"gene{j}" for j in range(N_VARS)])
    return path


@pytest.mark.parametrize("sparse", [False, True])
def test_h5ad_loads_rows_and_obs(tmp_path, sparse):
    x = counts_matrix()
    path = write_h5ad(tmp_path / "cells.h5ad", x, sparse)
    ds = open_dataset(path, labels=True, in_memory=False)
    assert isinstance(ds, H5adDataset)
    assert ds.spec.kind == "counts" and ds.spec.shape == (N_VARS,)
    assert ds.var_names == [f"gene{j}" for j in range(N_VARS)]
    assert ds.label_categories["cell_type"] == ["B cell", "T cell", "NK"]
    seen = []
    for batch in make_loader(ds, 8, seed=1, block_size=4, fetch_factor=2):
        index = batch["index"].numpy()
        np.testing.assert_array_equal(batch["x"].numpy(), x[index])
        assert batch["labels"]["cell_type"].tolist() == (index % 3).tolist()
        np.testing.assert_allclose(batch["labels"]["n_counts"].numpy(), x[index].sum(axis=1))
        seen.append(index)
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(N_OBS))
    # in memory gives the same values
    mem = H5adDataset(path, labels=["cell_type"], in_memory=True)
    assert torch.equal(mem.read([3, 10, 0])["x"], torch.from_numpy(x[[3, 10, 0]]))


def test_h5ad_string_and_nullable_obs_columns(tmp_path):
    path = write_h5ad(tmp_path / "cells.h5ad", counts_matrix(), sparse=True)
    ds = H5adDataset(path, labels=["donor", "n_genes"])
    assert ds.label_categories["donor"] == ["d1", "d2"]
    batch = ds.read([0, 1, 4])
    assert batch["labels"]["donor"].tolist() == [1, 0, 1]
    genes = batch["labels"]["n_genes"]
    assert genes[:2].tolist() == [0.0, 1.0] and torch.isnan(genes[2])  # masked = missing


def test_h5ad_float_normalised_is_vectors(tmp_path):
    x = counts_matrix() / 3.0
    ds = H5adDataset(write_h5ad(tmp_path / "norm.h5ad", x, sparse=True))
    assert ds.spec.kind == "vectors"
    assert registry.datasets.get("h5ad") is H5adDataset


def test_h5ad_csc_and_missing_obs_column(tmp_path):
    x = counts_matrix()
    with pytest.raises(DataError, match="CSC .* save it as CSR"):
        H5adDataset(write_h5ad(tmp_path / "csc.h5ad", x, sparse=True, fmt="csc"))
    with pytest.raises(
        DataError, match="no obs column 'batch'; obs columns: cell_type, donor, n_counts, n_genes"
    ):
        H5adDataset(write_h5ad(tmp_path / "ok.h5ad", x, sparse=False), labels="batch")
    with pytest.raises(DataError, match="no 'layers/raw'"):
        H5adDataset(tmp_path / "ok.h5ad", key="layers/raw")
    with pytest.raises(DataError, match="an AnnData file; read it with H5adDataset"):
        H5Dataset(tmp_path / "ok.h5ad")
