"""Writing model outputs (codes, reconstructions, samples) as HDF5 files, atomically.

Generated data is stored in the layout :class:`genlatent.data.H5Dataset` reads, so an output
file can be fed back to any command: ``x`` with ``kind`` (and ``layout`` / ``vocab``)
attributes, ``lengths`` for token data, and for token data also the decoded strings
(``strings``, fixed-length UTF-8 bytes) beside the ids.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..dataspec import DataSpec


def decode_tokens(data: DataSpec, ids: np.ndarray) -> list[str]:
    """Token ids ``(N, L)`` back to strings (up to ``<eos>``; SMILES tokens join with "");
    molecules tokenised as SELFIES come back as SMILES ("" when SELFIES cannot decode)."""
    from ..data.tokens import Vocabulary, encoding_of, to_smiles

    vocab = Vocabulary(list(data.vocab or ()))
    join = str((data.extra or {}).get("join", ""))
    encoding = encoding_of(data.extra)
    return [to_smiles(vocab.decode(row, join=join), encoding) for row in np.asarray(ids)]


def fixed_bytes(strings: list[str]) -> np.ndarray:
    """Strings as a fixed-length bytes array (UTF-8), the portable HDF5 string form."""
    encoded = [s.encode("utf-8") for s in strings]
    width = max([len(b) for b in encoded] + [1])
    return np.array(encoded, dtype=f"S{width}")


def data_arrays(
    data: DataSpec, out: Mapping[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, dict]]:
    """The datasets (with attributes) that store generated data ``out`` (``x``[, ``lengths``])."""
    attrs: dict[str, Any] = {"kind": data.kind}
    x = np.asarray(out["x"])
    arrays: dict[str, tuple[np.ndarray, dict]] = {}
    if data.kind == "tokens":
        attrs["vocab"] = json.dumps(list(data.vocab or ()))
        if "encoding" in (data.extra or {}):  # read back with the same encoding
            attrs["tokenizer"] = data.extra["encoding"]
        dtype = np.uint8 if len(data.vocab or ()) <= 256 else np.int16
        arrays["x"] = (x.astype(dtype), attrs)
        arrays["lengths"] = (np.asarray(out["lengths"]).astype(np.int32), {})
        arrays["strings"] = (fixed_bytes(decode_tokens(data, x)), {"encoding": "utf-8"})
        return arrays
    if data.kind == "grids" and len(data.shape) == 2:
        attrs["layout"] = "CL"
    arrays["x"] = (x.astype(np.float32), attrs)
    return arrays


def write_h5(
    path: str | os.PathLike[str],
    arrays: Mapping[str, tuple[np.ndarray, Mapping[str, Any]] | np.ndarray],
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write datasets (each an array or ``(array, attrs)``) and file attributes atomically."""
    import h5py

    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            for name, item in arrays.items():
                array, ds_attrs = item if isinstance(item, tuple) else (item, {})
                array = np.asarray(array)
                chunks = None
                if array.ndim >= 1 and array.shape[0] > 0 and array.nbytes > 1 << 20:
                    row = max(1, array.nbytes // max(array.shape[0], 1))
                    chunks = (max(1, min(array.shape[0], (1 << 20) // row)), *array.shape[1:])
                ds = f.create_dataset(name, data=array, chunks=chunks)
                for key, value in ds_attrs.items():
                    ds.attrs[key] = value
            for key, value in (attrs or {}).items():
                f.attrs[key] = value if not isinstance(value, (dict, list)) else json.dumps(value)
    return Path(path)


def carried_labels(
    dataset: Any, rows: np.ndarray, taken: set[str]
) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """The dataset's labels at ``rows`` (file row ids); a label whose name is taken gets a
    ``label_`` prefix.

    A label stored as a 1-D dataset at the top of the file is copied as stored (values and
    attributes such as ``label_names``); others (``.h5ad`` obs columns) as the values the
    data layer read, with their category names as the ``label_names`` attribute.
    """
    from ..data import open_h5

    labels = getattr(dataset, "labels", {}) or {}
    if not labels:
        return {}
    rows = np.asarray(rows, dtype=np.int64)
    categories = getattr(dataset, "label_categories", {}) or {}
    out = {}
    with open_h5(dataset.path) as f:
        for name, values in labels.items():
            source = f.get(name)
            stored = (
                source is not None
                and hasattr(source, "shape")
                and source.ndim == 1
                and source.shape[0] == len(values)
            )
            if stored:
                item = (source[()][rows], dict(source.attrs))
            else:
                attrs = {"label_names": json.dumps(categories[name])} if name in categories else {}
                item = (np.asarray(values)[rows], attrs)
            out[name if name not in taken else f"label_{name}"] = item
    return out
