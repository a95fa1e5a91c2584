"""A reader for a folder of ``.npy`` files: ``x.npy`` holds the examples (rows along axis 0),
and every other 1-D array of the same length can be a label (``y.npy``, ``temperature.npy``).

Subclassing :class:`genlatent.data.ArrayDataset` gives the rest for free: the data spec
inferred from the array, value checks, batches, ``split``, the loader and the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genlatent.data import ArrayDataset
from genlatent.errors import DataError


class NpyFolder(ArrayDataset):
    """``NpyFolder("data/", labels=True)``: ``data/x.npy`` plus its aligned 1-D arrays."""

    description = "a folder of .npy files (x.npy and 1-D label arrays)"

    @classmethod
    def can_open(cls, path: Path) -> bool:
        return path.is_dir() and (path / "x.npy").is_file()

    def __init__(
        self,
        path: str | Path,
        key: str = "x",
        labels: str | Sequence[str] | bool | None = None,
        **options: Any,
    ) -> None:
        folder = Path(path)
        files = {p.stem: p for p in sorted(folder.glob("*.npy"))}
        if key not in files:
            known = ", ".join(files) or "(none)"
            raise DataError(f"{folder}: no {key}.npy; arrays in the folder: {known}")
        x = _load(files.pop(key), mmap_mode="r")  # copied into memory once, on first use
        if labels is True:
            arrays = {name: _load(p) for name, p in files.items()}
            chosen = {n: a for n, a in arrays.items() if a.ndim == 1 and len(a) == len(x)}
        else:
            names = [] if not labels else [labels] if isinstance(labels, str) else list(labels)
            missing = [n for n in names if n not in files]
            if missing:
                raise DataError(f"{folder}: no label array {missing[0]}.npy")
            chosen = {n: _load(files[n]) for n in names}
        super().__init__(x, chosen, path=folder, key=key, **options)


def _load(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
