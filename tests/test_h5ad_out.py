"""Latents back into AnnData: ``genlatent encode RUN cells.h5ad --out cells_latent.h5ad``
writes a copy that the real ``anndata`` reads unchanged, dense and CSR."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import genlatent
from genlatent.analysis import inference
from genlatent.analysis.h5ad_out import write_h5ad_latents
from genlatent.cli.main import cli
from genlatent.data import open_dataset, write_h5
from genlatent.errors import DataError

anndata = pytest.importorskip("anndata")
pd = pytest.importorskip("pandas")
sparse = pytest.importorskip("scipy.sparse")


def invoke(*args, ok: bool = True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    return result


def _cells(path, csr: bool):
    """A real AnnData file written by anndata: counts, a categorical obs column, var names,
    an existing obsm entry and uns."""
    rng = np.random.default_rng(0 if csr else 1)
    counts = rng.poisson(0.7, size=(50, 20)).astype(np.float32)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(rng.choice(["B", "T", "NK"], 50)),
         "n_counts": counts.sum(1)},
        index=[f"cell{i}" for i in range(50)],
    )
    var = pd.DataFrame(index=[f"gene{j}" for j in range(20)])
    adata = anndata.AnnData(
        X=sparse.csr_matrix(counts) if csr else counts,
        obs=obs,
        var=var,
        obsm={"X_pca": rng.normal(size=(50, 3)).astype(np.float32)},
        uns={"note": "from the lab"},
    )
    adata.write_h5ad(path)
    return adata


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An untrained VAE for 20-gene count vectors, saved as a model folder."""
    folder = tmp_path_factory.mktemp("model")
    cells = folder / "shape.h5ad"
    _cells(cells, csr=False)
    data = open_dataset(cells)
    model = genlatent.build({"latent_dim": 4, "data": data.spec.to_dict()}, seed=0)
    model.save(folder / "vae")
    return folder / "vae"


@pytest.mark.parametrize("csr", [False, True], ids=["dense", "csr"])
def test_encode_into_h5ad_is_read_by_anndata(model_dir, tmp_path, csr) -> None:
    source = tmp_path / "cells.h5ad"
    original = _cells(source, csr)
    before = source.read_bytes()
    out = tmp_path / "cells_latent.h5ad"
    result = invoke("encode", model_dir, source, "--out", out)
    assert "obsm X_genlatent (50, 4)" in result.stdout
    assert source.read_bytes() == before  # the input is untouched

    adata = anndata.read_h5ad(out)
    model = genlatent.load(model_dir)
    codes = inference.encode_dataset(model, open_dataset(source))
    np.testing.assert_allclose(adata.obsm["X_genlatent"], codes["mean"], rtol=1e-6)
    np.testing.assert_allclose(adata.obsm["X_genlatent_scale"], codes["scale"], rtol=1e-6)
    assert (adata.obsm["X_genlatent_scale"] > 0).all()
    # everything that was there is still there
    x = adata.X.toarray() if csr else adata.X
    assert sparse.issparse(adata.X) == csr
    np.testing.assert_array_equal(x, original.X.toarray() if csr else original.X)
    pd.testing.assert_frame_equal(adata.obs, original.obs)
    assert list(adata.var_names) == list(original.var_names)
    np.testing.assert_array_equal(adata.obsm["X_pca"], original.obsm["X_pca"])
    assert adata.uns["note"] == "from the lab"
    assert adata.uns["genlatent"]["latent_dim"] == 4
    assert adata.uns["genlatent"]["source"] == str(source)
    # the new arrays carry the on-disk encoding anndata expects
    with h5py.File(out, "r") as f:
        attrs = dict(f["obsm/X_genlatent"].attrs)
    assert attrs["encoding-type"] == "array" and attrs["encoding-version"] == "0.2.0"


def test_writing_again_replaces_and_drops_a_stale_scale(tmp_path) -> None:
    source = tmp_path / "cells.h5ad"
    _cells(source, csr=True)
    first = np.ones((50, 3), np.float32)
    write_h5ad_latents(source, source, first, first * 2, provenance={"run": "a"})
    second = np.zeros((50, 2), np.float32)
    write_h5ad_latents(source, source, second, provenance={"run": "b", "latent_dim": 2})
    adata = anndata.read_h5ad(source)
    np.testing.assert_array_equal(adata.obsm["X_genlatent"], second)
    assert "X_genlatent_scale" not in adata.obsm and "X_pca" in adata.obsm
    assert adata.uns["genlatent"] == {"run": "b", "latent_dim": 2}


def test_wrong_rows_or_input_fail_in_one_line_and_write_nothing(model_dir, tmp_path) -> None:
    source = tmp_path / "cells.h5ad"
    _cells(source, csr=False)
    with pytest.raises(DataError, match="49 latent rows for 50 observations"):
        write_h5ad_latents(source, tmp_path / "bad.h5ad", np.zeros((49, 2)))
    assert not (tmp_path / "bad.h5ad").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["cells.h5ad"]  # no temp file left
    write_h5(tmp_path / "plain.h5", np.zeros((5, 20), np.float32), attrs={"kind": "vectors"})
    result = invoke("encode", model_dir, tmp_path / "plain.h5", "--out", tmp_path / "o.h5ad",
                    ok=False)
    assert result.exit_code == 2 and "needs an .h5ad input" in result.stderr
    assert not (tmp_path / "o.h5ad").exists()
