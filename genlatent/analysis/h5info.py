"""A summary of an HDF5 file: every dataset's shape and dtype, and the attributes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError


def _attr_summary(value: Any, limit: int = 60) -> Any:
    """A short JSON-ready stand-in for an attribute (long arrays become ``'<N items>'``)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.size > 8:
            return f"<{value.size} {value.dtype} values>"
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        if len(value) > limit:
            if value.lstrip().startswith(("[", "{")):
                import json

                try:
                    parsed = json.loads(value)
                except ValueError:
                    parsed = None
                if isinstance(parsed, (list, dict)):
                    return f"<JSON {type(parsed).__name__} of {len(parsed)} items>"
            return value[: limit - 1] + "…"
        return value
    if isinstance(value, list):
        return [_attr_summary(v, limit) for v in value]
    return value


def describe_h5(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"path", "attrs", "datasets": {name: {"shape", "dtype", "attrs"}}}`` for a file."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
    datasets: dict[str, Any] = {}
    with handle:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                datasets[name] = {
                    "shape": list(obj.shape),
                    "dtype": str(obj.dtype),
                    "attrs": {k: _attr_summary(v) for k, v in obj.attrs.items()},
                }

        handle.visititems(visit)
        attrs = {k: _attr_summary(v) for k, v in handle.attrs.items()}
    return {"path": str(path), "attrs": attrs, "datasets": datasets}
