"""NumPy arrays as a dataset: the base for readers of formats that load into arrays."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .rows import RowDataset, label_values

__all__ = ["ArrayDataset"]


class ArrayDataset(RowDataset):
    """Examples along axis 0 of a NumPy array (or memory map), with aligned 1-D labels.

    The rows are copied into memory once, on first use. ``kind``, ``layout``, ``scale`` and
    ``check`` mean what they mean for :class:`~genlatent.data.H5Dataset`; token data needs
    ``vocab`` (starting ``<pad> <bos> <eos> <unk>``) and ``lengths``. ``path`` and ``key``
    name the source in messages and in run configs. A reader for another file format
    subclasses this, loads the arrays in ``__init__`` and passes them on (see
    ``plugins/genlatent-example``).
    """

    def __init__(
        self,
        x: np.ndarray,
        labels: Mapping[str, np.ndarray] | None = None,
        *,
        path: str | os.PathLike[str] = "<array>",
        key: str = "x",
        lengths: np.ndarray | None = None,
        vocab: Sequence[str] | None = None,
        kind: str | None = None,
        layout: str | None = None,
        scale: float | str | None = "auto",
        device: str | torch.device | None = None,
        check: bool = True,
        rows: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(path, key, in_memory=True, device=device)
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
            raise DataError(f"{self.where}: expected a numeric NumPy array, got {_what(x)}")
        if x.ndim < 2 or x.ndim > 4:
            raise DataError(
                f"{self.where}: shape {x.shape} has rank {x.ndim}; expected (N, D) vectors, "
                f"(N, C, L) or (N, H, W) or (N, C, H, W) grids, (N, L) tokens"
            )
        self._array = x
        self._num_file_rows = int(x.shape[0])
        self._row_shape = tuple(int(s) for s in x.shape[1:])
        self._stored_dtype = np.dtype(x.dtype)
        kind = self._resolve_kind(kind, vocab)
        for name, values in (labels or {}).items():
            self._add_label(name, *label_values(f"{self.path}:{name}", np.asarray(values)))
        if kind == "tokens":
            self._check_token_storage(vocab)
            if lengths is None:
                raise DataError(f"{self.where}: token data needs lengths")
            self._set_lengths(f"{self.path}:lengths", np.asarray(lengths))
        self._finish_spec(kind, vocab, layout, scale, {}, check)
        self._choose_rows(rows, True, 0)

    def _read_into(self, out: np.ndarray, offset: int, start: int, stop: int) -> None:
        out[offset : offset + stop - start] = self._array[start:stop]


def _what(x: Any) -> str:
    dtype = getattr(x, "dtype", None)
    return f"{type(x).__name__}" + (f" of {dtype}" if dtype is not None else "")
