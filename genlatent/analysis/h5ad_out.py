"""Latents back into the scverse: a copy of an AnnData ``.h5ad`` file with the codes in
``obsm``, as scvi-tools puts its latents in ``obsm["X_scVI"]``.

The copy is byte-for-byte the input (``X``, layers, ``obs``, ``var``, ``uns``, other
``obsm`` entries untouched) plus ``obsm["X_genlatent"]`` (posterior means, ``(n_obs, D)``),
``obsm["X_genlatent_scale"]`` (posterior standard deviations, VAE) and ``uns["genlatent"]``
(which run made them), written with h5py in the AnnData on-disk format (``encoding-type`` /
``encoding-version`` attributes), so ``anndata.read_h5ad`` and scanpy read it unchanged. The
new file appears atomically.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import DataError

MEAN_KEY = "X_genlatent"
SCALE_KEY = "X_genlatent_scale"
UNS_KEY = "genlatent"


def _n_obs(f: Any, where: str) -> int:
    """Rows of the AnnData in an open file: the obs index, else X."""
    obs = f.get("obs")
    if obs is not None and hasattr(obs, "attrs") and "_index" in obs.attrs:
        index = obs.attrs["_index"]
        index = index.decode() if isinstance(index, bytes) else str(index)
        if index in obs:
            return int(obs[index].shape[0])
    x = f.get("X")
    if x is not None:
        if hasattr(x, "shape"):
            return int(x.shape[0])
        if "shape" in x.attrs:
            return int(x.attrs["shape"][0])
    raise DataError(f"{where}: not an AnnData file (no obs index and no X)")


def _dict_group(parent: Any, name: str, where: str) -> Any:
    """``parent[name]`` as an AnnData dict group, created when missing."""
    if name in parent:
        group = parent[name]
        if not hasattr(group, "keys"):
            raise DataError(
                f"{where}: {name} is stored in the pre-0.8 AnnData format; re-save the file "
                f"with a current anndata (adata.write_h5ad) first"
            )
        return group
    group = parent.create_group(name)
    group.attrs["encoding-type"] = "dict"
    group.attrs["encoding-version"] = "0.1.0"
    return group


def _write_array(group: Any, name: str, array: np.ndarray) -> None:
    if name in group:
        del group[name]
    ds = group.create_dataset(name, data=array)
    ds.attrs["encoding-type"] = "array"
    ds.attrs["encoding-version"] = "0.2.0"


def _write_scalar(group: Any, name: str, value: Any) -> None:
    import h5py

    if isinstance(value, str):
        ds = group.create_dataset(name, data=value, dtype=h5py.string_dtype("utf-8"))
        ds.attrs["encoding-type"] = "string"
    else:
        ds = group.create_dataset(name, data=np.asarray(value))
        ds.attrs["encoding-type"] = "numeric-scalar"
    ds.attrs["encoding-version"] = "0.2.0"


def write_h5ad_latents(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    mean: np.ndarray,
    scale: np.ndarray | None = None,
    *,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Copy the AnnData file ``source`` to ``out`` with ``obsm["X_genlatent"] = mean`` (and
    ``obsm["X_genlatent_scale"] = scale``), one row per observation in file order, and the
    string / number items of ``provenance`` in ``uns["genlatent"]``. Existing entries of
    those names are replaced; ``out`` may be ``source`` itself (it is replaced atomically)."""
    import h5py

    source = Path(source)
    mean = np.asarray(mean, dtype=np.float32)
    if mean.ndim != 2:
        raise DataError(f"latent means must be (n_obs, D), got shape {list(mean.shape)}")
    if scale is not None:
        scale = np.asarray(scale, dtype=np.float32)
        if scale.shape != mean.shape:
            raise DataError(f"scales {list(scale.shape)} do not match means {list(mean.shape)}")
    with atomic_path(out, suffix=".h5ad") as tmp:
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as f:
            n_obs = _n_obs(f, str(source))
            if mean.shape[0] != n_obs:
                raise DataError(
                    f"{source}: {mean.shape[0]} latent rows for {n_obs} observations; "
                    f"encode every row to write an .h5ad"
                )
            obsm = _dict_group(f, "obsm", str(source))
            _write_array(obsm, MEAN_KEY, mean)
            if scale is not None:
                _write_array(obsm, SCALE_KEY, scale)
            elif SCALE_KEY in obsm:
                del obsm[SCALE_KEY]  # a stale scale from another model must not stay
            uns = _dict_group(f, "uns", str(source))
            if UNS_KEY in uns:
                del uns[UNS_KEY]
            info = _dict_group(uns, UNS_KEY, str(source))
            for name, value in (provenance or {}).items():
                if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
                    _write_scalar(info, name, value)
    return Path(out)
