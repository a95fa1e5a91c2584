"""AnnData ``.h5ad`` files read directly with h5py (anndata is not needed).

The on-disk layout (anndata >= 0.8): ``X`` is either a dense ``(n_obs, n_vars)`` dataset or a
group with ``encoding-type = "csr_matrix"``, a ``shape`` attribute and the datasets ``data``,
``indices`` and ``indptr``; ``obs`` is a dataframe group whose columns are arrays, string arrays
or categorical groups (``codes`` with ``-1`` for missing, plus ``categories``). Older files
mark sparse groups with ``h5sparse_format = "csr"`` instead; both are read. CSR rows are
densified per block read, so a fetch costs two slice reads per contiguous run of rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .h5 import H5Dataset
from .h5file import check_not_truncated, decode_attr, first_line, is_anndata
from .rows import label_values

__all__ = ["H5adDataset"]


def _encoding(obj: Any) -> str | None:
    value = obj.attrs.get("encoding-type", obj.attrs.get("h5sparse_format"))
    value = decode_attr(value) if value is not None else None
    return {"csr": "csr_matrix", "csc": "csc_matrix"}.get(value, value)


class H5adDataset(H5Dataset):
    """An AnnData file: rows of ``X`` (or ``key="layers/<name>"``) with ``obs`` columns as labels.

    ``labels`` names ``obs`` columns (``True`` for all); categorical and string columns come
    back as integer codes (``-1`` = missing), their names in ``label_categories[column]``.
    The default kind is ``counts`` when ``X`` holds non-negative integers (checked on the
    first rows for float storage), else ``vectors``. Other options are those of
    :class:`~genlatent.data.H5Dataset`.
    """

    default_key = "X"
    description = "an AnnData file (.h5ad)"

    @classmethod
    def can_open(cls, path: Path) -> bool:
        return path.is_file() and is_anndata(path)

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: str = "X",
        labels: str | Sequence[str] | bool | None = None,
        **options: Any,
    ) -> None:
        self._sparse = False
        self.var_names: list[str] | None = None
        super().__init__(path, key, labels, **options)

    def _open_source(self, f: Any) -> None:
        if self.key not in f:
            keys = [k for k in ("X", "obs", "var") if k in f]
            if "layers" in f:
                keys += [f"layers/{name}" for name in f["layers"]]
            raise DataError(
                f"{self.path}: no {self.key!r} in this .h5ad file; it has: "
                f"{', '.join(keys) or '(nothing)'}"
            )
        node = f[self.key]
        if hasattr(node, "shape"):
            super()._open_source(f)
        else:
            encoding = _encoding(node)
            if encoding == "csc_matrix":
                raise DataError(
                    f"{self.where}: stored as CSC (column-compressed), whose rows cannot be read "
                    f"in blocks; save it as CSR (adata.X = adata.X.tocsr())"
                )
            if encoding != "csr_matrix" or not all(
                k in node for k in ("data", "indices", "indptr")
            ):
                raise DataError(
                    f"{self.where}: expected a dense array or a CSR matrix group "
                    f"(data, indices, indptr), got encoding {encoding!r}"
                )
            self._sparse = True
            shape = tuple(int(s) for s in node.attrs["shape"])
            if len(shape) != 2:
                raise DataError(f"{self.where}: sparse matrix shape {shape} is not 2-D")
            data = node["data"]
            if data.dtype.kind not in "biuf":
                raise DataError(f"{self.where}: dtype {data.dtype} is not numeric")
            for part in ("data", "indices"):
                check_not_truncated(self.path, self.where, node[part])
            indptr = node["indptr"][()].astype(np.int64)
            if indptr.shape != (shape[0] + 1,) or np.any(np.diff(indptr) < 0):
                raise DataError(f"{self.where}: indptr does not match {shape[0]} rows")
            self._indptr = indptr
            self._num_file_rows = shape[0]
            self._row_shape = (shape[1],)
            self._stored_dtype = np.dtype(data.dtype)
            if shape[1] == 0:
                raise DataError(f"{self.where}: the matrix has no columns")
        var = f.get("var")
        if var is not None and "_index" in var.attrs:
            index = var[decode_attr(var.attrs["_index"])][()]
            self.var_names = [v.decode() if isinstance(v, bytes) else str(v) for v in index]

    def _bind(self, f: Any) -> None:
        if self._sparse:
            node = f[self.key]
            self._data, self._indices = node["data"], node["indices"]
        else:
            super()._bind(f)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in ("_data", "_indices"):
            state.pop(name, None)
        return state

    def _attrs(self, f: Any) -> dict[str, Any]:
        attrs = f[self.key].attrs
        return {k: decode_attr(v) for k, v in attrs.items() if k in ("kind", "scale", "layout")}

    def _infer_kind(self, vocab: list[str] | None) -> str:
        if self._stored_dtype.kind in "iu":
            return "counts"
        probe = self._read_range(0, min(self._num_file_rows, 1024))
        integral = bool(np.all(probe >= 0) and np.all(probe == np.round(probe)))
        return "counts" if integral else "vectors"

    def _choose_scale(self, kind: str, scale: Any, attrs: dict[str, Any]) -> float:
        if scale == "auto" and "scale" not in attrs:
            return 1.0  # expression values are never pixel intensities
        return super()._choose_scale(kind, scale, attrs)

    def _read_into(self, out: np.ndarray, offset: int, start: int, stop: int) -> None:
        if not self._sparse:
            super()._read_into(out, offset, start, stop)
            return
        self._handle()
        p0, p1 = int(self._indptr[start]), int(self._indptr[stop])
        try:
            values = self._data[p0:p1]
            columns = self._indices[p0:p1]
        except (OSError, ValueError) as exc:
            raise DataError(
                f"{self.where}: cannot read rows {start}:{stop} ({first_line(exc)})"
            ) from None
        n = stop - start
        block = out[offset : offset + n]
        block.fill(0)
        row_of = np.repeat(np.arange(n), np.diff(self._indptr[start : stop + 1]))
        if columns.size and (columns.min() < 0 or columns.max() >= self._row_shape[0]):
            raise DataError(f"{self.where}: column indices outside [0, {self._row_shape[0]})")
        block[row_of, columns] = values

    def _load_labels(self, f: Any, labels: Any) -> None:
        if labels is True:
            obs = f.get("obs")
            if obs is None:
                return
            order = decode_attr(obs.attrs.get("column-order", []))
            labels = [order] if isinstance(order, str) else list(order)
            if not labels:
                return
        super()._load_labels(f, labels)

    def _read_label(self, f: Any, name: str) -> tuple[np.ndarray, list[str] | None]:
        obs = f.get("obs")
        columns = [k for k in obs if k != "_index" and k != "__categories"] if obs else []
        if obs is None or name not in obs:
            raise DataError(
                f"{self.path}: no obs column {name!r}; obs columns: "
                f"{', '.join(columns) if columns else '(none)'}"
            )
        node = obs[name]
        where = f"{self.path}:obs/{name}"
        if hasattr(node, "shape"):
            # anndata < 0.8 kept categories in obs/__categories/<name>
            legacy = obs.get("__categories")
            if legacy is not None and name in legacy:
                return _categorical(where, node[()], legacy[name][()])
            return label_values(where, node[()])
        encoding = _encoding(node)
        if encoding == "categorical":
            return _categorical(where, node["codes"][()], node["categories"][()])
        if encoding in ("nullable-integer", "nullable-boolean", "nullable-float"):
            values = node["values"][()]
            if "mask" in node and np.any(node["mask"][()]):
                values = values.astype(np.float64)
                values[node["mask"][()]] = np.nan
            return label_values(where, values)
        raise DataError(f"{where}: unsupported obs column encoding {encoding!r}")

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["sparse"] = self._sparse
        if self.var_names is not None:
            info["n_vars"] = len(self.var_names)
        return info


def _categorical(
    where: str, codes: np.ndarray, categories: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    if codes.dtype.kind not in "iu":
        raise DataError(f"{where}: categorical codes must be integers, got {codes.dtype}")
    names = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in categories.tolist()]
    if codes.size and codes.max() >= len(names):
        raise DataError(f"{where}: categorical codes exceed the {len(names)} categories")
    return codes.astype(np.int64), names
