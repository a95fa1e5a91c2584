"""HDF5 file helpers shared by the HDF5 readers: opening, attributes, listing, mapping.

Files are opened read-only and without file locking (network file systems), with one-line
errors for missing, foreign, truncated or corrupt files.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..dataspec import SPECIAL_TOKENS
from ..errors import DataError

__all__ = ["open_h5", "is_hdf5", "list_datasets", "decode_attr", "read_vocab", "first_line"]

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (h5py's can be long)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_hdf5(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a readable file with the HDF5 signature (never raises)."""
    import h5py

    try:
        return Path(path).is_file() and bool(h5py.is_hdf5(path))
    except OSError:
        return False


def open_h5(path: str | os.PathLike[str]) -> Any:
    """Open ``path`` read-only without file locking, with one-line errors for bad files."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected an HDF5 file")
    try:
        signed = h5py.is_hdf5(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({first_line(exc)})") from None
    if not signed:
        raise DataError(f"{path}: not an HDF5 file")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise DataError(
            f"{path}: cannot open as HDF5, the file may be truncated or corrupt "
            f"({first_line(exc)})"
        ) from None


def root_attr(path: str | os.PathLike[str], name: str) -> Any:
    """Attribute ``name`` of the file's root group, decoded; None when absent or unreadable
    (for choosing a reader: never raises)."""
    if not is_hdf5(path):
        return None
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as f:
            value = f.attrs.get(name)
    except OSError:
        return None
    return decode_attr(value) if value is not None else None


def is_anndata(path: Path) -> bool:
    """An ``.h5ad`` suffix, or an HDF5 file whose root says ``encoding-type = anndata``."""
    if path.suffix.lower() == ".h5ad":
        return True
    return root_attr(path, "encoding-type") == "anndata"


def list_datasets(group: Any) -> list[str]:
    """Paths of every dataset below ``group`` (for 'missing key' messages)."""
    import h5py

    found: list[str] = []
    group.visititems(
        lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None
    )
    return found


def decode_attr(value: Any) -> Any:
    """An HDF5 attribute as plain Python: bytes to str, string arrays to lists, scalars."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_vocab(where: str, attrs: Any) -> list[str] | None:
    """The ``vocab`` attribute as a list of tokens (a JSON list or an array of strings)."""
    if "vocab" not in attrs:
        return None
    value = decode_attr(attrs["vocab"])
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(f"{where}: attribute 'vocab' is not a JSON list of tokens") from None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise DataError(f"{where}: attribute 'vocab' must be a list of strings")
    if tuple(value[:4]) != SPECIAL_TOKENS:
        raise DataError(
            f"{where}: attribute 'vocab' must start with {' '.join(SPECIAL_TOKENS)}, "
            f"got {' '.join(value[:4])}"
        )
    return value


def check_not_truncated(path: str, where: str, ds: Any) -> None:
    """A contiguous dataset whose bytes run past the end of the file means truncation."""
    offset = ds.id.get_offset()
    if offset is None:
        return
    size = os.path.getsize(path)
    if offset + ds.id.get_storage_size() > size:
        raise DataError(
            f"{where}: the file is truncated ({size} bytes, the data needs "
            f"{offset + ds.id.get_storage_size()})"
        )


def mappable_offset(f: Any, ds: Any) -> int | None:
    """File offset of a dataset that np.memmap can read as is, else None."""
    try:
        offset = ds.id.get_offset()
    except Exception:  # pragma: no cover - virtual or external datasets
        return None
    if offset is None or f.driver != "sec2" or ds.dtype.kind not in "biuf":
        return None
    native = "<" if sys.byteorder == "little" else ">"
    if ds.dtype.byteorder not in ("=", "|") and ds.dtype.byteorder != native:
        return None
    if ds.id.get_storage_size() != ds.size * ds.dtype.itemsize:
        return None  # not fully allocated (or filtered)
    return int(offset)
