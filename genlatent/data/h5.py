"""HDF5 datasets: lazy, validated, read in contiguous runs, in memory when they fit.

File layout (see ``docs/data.md``)::

    x         (N, ...) the data; row i is example i
    lengths   (N,) int       token data only: ids per row, <eos> included
    <labels>  (N,)           any 1-D aligned datasets, asked for by name
    x.attrs   kind, layout ("HW" or "CL" for 3-D data), scale, vocab (JSON list, tokens)

The file is opened lazily in the process that reads it (never before a fork, never pickled):
DataLoader workers and DDP ranks each open their own handle, read-only and without file
locking (network file systems). Construction opens the file once to validate it and closes it.
What does not depend on HDF5 (spec, labels, batches, subsets) is in :mod:`.rows`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .h5file import (
    HDF5_SUFFIXES,
    check_not_truncated,
    decode_attr,
    first_line,
    is_anndata,
    is_hdf5,
    list_datasets,
    mappable_offset,
    open_h5,
    read_vocab,
)
from .rows import DEFAULT_MEMORY_LIMIT, RowDataset, label_values

__all__ = ["H5Dataset", "open_h5", "DEFAULT_MEMORY_LIMIT"]


class H5Dataset(RowDataset):
    """Examples stored along axis 0 of one HDF5 dataset, with aligned labels.

    Args:
        path: the HDF5 file.
        key: the data inside it (default ``"x"``).
        labels: names of aligned 1-D datasets returned as ``batch["labels"][name]``; a string
            for one; ``True`` for those listed in the file's ``labels`` attribute (JSON list,
            written by the importers), else every aligned numeric 1-D dataset.
        lengths: the token-lengths dataset (token data; default ``"lengths"``).
        kind: ``vectors`` / ``grids`` / ``tokens`` / ``counts``; default from the ``kind``
            attribute, else inferred: a ``vocab`` attribute means tokens; 2-D float or uint8
            means vectors; 2-D other integers counts; 3-D and 4-D grids.
        layout: for 3-D data, ``"HW"`` (images, lattices: a channel axis is added) or ``"CL"``
            (channels x length: spectra). Default from the ``layout`` attribute, else ``"CL"``
            when the middle axis is at most 4 and the last is longer, else ``"HW"``.
        scale: values are multiplied by it when read (not for tokens). ``"auto"``: the
            ``scale`` attribute if present; for uint8 data 1/255 (pixels to [0, 1]) unless the
            first rows hold only 0 and 1 (binary data, kept as is); otherwise 1.
        in_memory: ``True`` loads the data once (on first use) and gathers batches from
            memory; ``False`` streams from the file; ``"auto"``: in memory when the decoded
            data is at most ``memory_limit`` bytes.
        device: where in-memory data lives (e.g. ``"cuda"``): batches then come out there.
        check: scan the data once, in pieces, for NaN/inf and for token ids outside the
            vocabulary (skip it for huge files you trust).
        rows: ``(start, stop)``: use only these rows (see :meth:`subset` and :meth:`split`).
        mmap: streaming only. ``"auto"`` (default): data stored contiguous and uncompressed
            (what the importers write) is memory-mapped and each fetch is one gather from the
            mapped pages: no copy through h5py's buffer, ~2x faster from the page cache.
            ``False``: one h5py slice read per block (may suit cold data on slow storage
            better). Other layouts (chunked, compressed, CSR) always use h5py reads.

    Batches are described in :class:`~genlatent.data.rows.RowDataset`.
    """

    description = "an HDF5 file (.h5)"

    @classmethod
    def can_open(cls, path: Path) -> bool:
        """HDF5 files, by suffix or signature, except AnnData ones."""
        if not path.is_file() or is_anndata(path):
            return False
        return path.suffix.lower() in HDF5_SUFFIXES or is_hdf5(path)

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: str = "x",
        labels: str | Sequence[str] | bool | None = None,
        *,
        lengths: str | None = None,
        kind: str | None = None,
        layout: str | None = None,
        scale: float | str | None = "auto",
        in_memory: bool | str = "auto",
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        device: str | torch.device | None = None,
        check: bool = True,
        rows: tuple[int, int] | None = None,
        mmap: bool | str = "auto",
    ) -> None:
        super().__init__(path, key, in_memory=in_memory, device=device)
        self._file: Any = None
        self._pid: int | None = None
        self._map: np.ndarray | None = None
        self._map_offset: int | None = None
        with open_h5(self.path) as f:
            # Validation reads through the same code as training, from this short-lived handle.
            self._file, self._pid = f, os.getpid()
            try:
                self._inspect(f, labels, lengths, kind, layout, scale, check)
            finally:
                self._file = self._pid = None
        self._choose_rows(rows, in_memory, memory_limit)
        if mmap not in (True, False, "auto"):
            raise DataError(f"mmap must be True, False or 'auto', got {mmap!r}")
        if mmap is True and self._map_offset is None:
            raise DataError(
                f"{self.where}: cannot be memory-mapped (only contiguous, uncompressed, "
                f"native-endian data can); use mmap='auto' or False"
            )
        self.mmap = bool(mmap) and self._map_offset is not None

    # ------------------------------------------------------------------ inspection

    def _inspect(
        self,
        f: Any,
        labels: str | Sequence[str] | bool | None,
        lengths_key: str | None,
        kind: str | None,
        layout: str | None,
        scale: float | str | None,
        check: bool,
    ) -> None:
        """Read shapes, attributes, labels; infer the spec; validate. ``f`` closes after."""
        self._open_source(f)
        self._bind(f)
        attrs = self._attrs(f)
        vocab = (
            read_vocab(self.where, attrs) if "vocab" in attrs else read_vocab(self.where, f.attrs)
        )
        kind = self._resolve_kind(kind or attrs.get("kind") or None, vocab)
        self._load_labels(f, labels)
        if kind == "tokens":
            self._inspect_tokens(f, vocab, lengths_key)
        self._finish_spec(kind, vocab, layout or attrs.get("layout"), scale, attrs, check)

    def _open_source(self, f: Any) -> None:
        """Find the data in the open file; set row count, stored row shape and dtype."""
        if self.key not in f or not hasattr(f[self.key], "shape"):
            if decode_attr(f.attrs.get("encoding-type")) == "anndata":
                raise DataError(
                    f"{self.path}: an AnnData file; read it with H5adDataset or open_dataset"
                )
            keys = list_datasets(f)
            raise DataError(
                f"{self.path}: no dataset {self.key!r}; datasets in the file: "
                f"{', '.join(keys) if keys else '(none)'}"
            )
        ds = f[self.key]
        if ds.dtype.kind not in "biuf":
            raise DataError(
                f"{self.where}: dtype {ds.dtype} is not numeric; expected float or integer data"
            )
        if ds.ndim < 2 or ds.ndim > 4:
            raise DataError(
                f"{self.where}: shape {tuple(ds.shape)} has rank {ds.ndim}; expected (N, D) "
                f"vectors, (N, C, L) or (N, H, W) or (N, C, H, W) grids, (N, L) tokens"
            )
        check_not_truncated(self.path, self.where, ds)
        self._num_file_rows = int(ds.shape[0])
        self._row_shape = tuple(int(s) for s in ds.shape[1:])
        self._stored_dtype = np.dtype(ds.dtype)
        self._map_offset = mappable_offset(f, ds)
        if any(s == 0 for s in self._row_shape):
            raise DataError(f"{self.where}: the dataset is empty (shape {tuple(ds.shape)})")

    def _attrs(self, f: Any) -> dict[str, Any]:
        return {k: decode_attr(v) for k, v in f[self.key].attrs.items()}

    def _load_labels(self, f: Any, labels: str | Sequence[str] | bool | None) -> None:
        if labels is None or labels is False:
            return
        n = self._num_file_rows
        if labels is True:
            listed = decode_attr(f.attrs.get("labels", ""))
            if isinstance(listed, str) and listed.startswith("["):
                names = json.loads(listed)  # the importers' list
            else:
                names = [
                    k
                    for k in f
                    if k not in (self.key, "lengths")
                    and hasattr(f[k], "shape")
                    and f[k].ndim == 1
                    and f[k].shape[0] == n
                    and f[k].dtype.kind in "biuf"
                ]
        else:
            names = [labels] if isinstance(labels, str) else list(labels)
        for name in names:
            self._add_label(name, *self._read_label(f, name))

    def add_labels(self, names: Sequence[str]) -> None:
        """Load more aligned label columns by name (e.g. a model's conditions)."""
        with open_h5(self.path) as f:
            self._load_labels(f, list(names))

    def _read_label(self, f: Any, name: str) -> tuple[np.ndarray, list[str] | None]:
        """Values of one label column (numbers, or codes plus category names for strings)."""
        if name not in f or not hasattr(f[name], "shape"):
            keys = [k for k in list_datasets(f) if k != self.key]
            raise DataError(
                f"{self.path}: no label dataset {name!r}; datasets in the file: "
                f"{', '.join(keys) if keys else '(none)'}"
            )
        enum = _enum_names(f[name].dtype)
        if enum is not None:  # HDF5 enum: codes in the order of their stored values
            stored = f[name][()]
            values = np.searchsorted(enum[0], stored) if stored.ndim == 1 else stored
            if stored.ndim == 1 and not np.array_equal(enum[0][values.clip(0, len(enum[0]) - 1)],
                                                       stored):
                raise DataError(f"{self.path}:{name}: values outside the enum's members")
            return label_values(f"{self.path}:{name}", values)[0], enum[1]
        values, categories = label_values(f"{self.path}:{name}", f[name][()])
        if categories is None and "label_names" in f[name].attrs:
            names = decode_attr(f[name].attrs["label_names"])
            categories = json.loads(names) if isinstance(names, str) else list(names)
        return values, categories

    def _inspect_tokens(self, f: Any, vocab: list[str] | None, lengths_key: str | None) -> None:
        self._check_token_storage(vocab)
        lengths_key = lengths_key or "lengths"
        if lengths_key not in f or not hasattr(f[lengths_key], "shape"):
            raise DataError(
                f"{self.path}: token data needs a lengths dataset {lengths_key!r}; datasets in "
                f"the file: {', '.join(list_datasets(f))}"
            )
        self._set_lengths(f"{self.path}:{lengths_key}", f[lengths_key][()])

    # ------------------------------------------------------------------ per-process file

    def _handle(self) -> Any:
        """This process's open file (opened on first use, reopened after a fork)."""
        if self._file is None or self._pid != os.getpid():
            self._file = open_h5(self.path)
            self._pid = os.getpid()
            self._bind(self._file)
        return self._file

    def _bind(self, f: Any) -> None:
        """Keep direct references to the h5py objects read per fetch."""
        self._ds = f[self.key]
        self._space = self._ds.id.get_space()
        self._mem_spaces: dict[int, Any] = {}

    def close(self) -> None:
        """Close this process's file handle (it reopens on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            try:
                self._file.close()
            except Exception:  # pragma: no cover - closing a dead handle
                pass
        self._file = None
        self._pid = None
        self._map = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in ("_file", "_pid", "_ds", "_space", "_mem_spaces", "_map", "_map_pid"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._file = None
        self._pid = None
        self._map = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ reading rows

    def _read_into(self, out: np.ndarray, offset: int, start: int, stop: int) -> None:
        """Copy file rows ``start:stop`` into ``out[offset:offset + stop - start]``."""
        self._handle()
        n = stop - start
        try:
            # The low-level call skips h5py's selection machinery: ~25 us instead of ~60 us
            # per read of a 64-row block.
            mem = self._mem_spaces.get(n)
            if mem is None:
                from h5py import h5s

                mem = self._mem_spaces[n] = h5s.create_simple((n, *self._row_shape))
            self._space.select_hyperslab(
                (start,) + (0,) * len(self._row_shape), (n, *self._row_shape)
            )
            self._ds.id.read(mem, self._space, out[offset : offset + n])
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(
                f"{self.where}: cannot read rows {start}:{stop} ({first_line(exc)})"
            ) from None

    def _read_rows(self, file_rows: np.ndarray) -> np.ndarray:
        if self.mmap:
            return self._gather_mapped(file_rows)
        return super()._read_rows(file_rows)

    def _mapped(self) -> np.ndarray:
        """This process's read-only memory map of the stored rows (made after any fork)."""
        if self._map is None or getattr(self, "_map_pid", None) != os.getpid():
            try:
                self._map = np.memmap(
                    self.path,
                    dtype=self._stored_dtype,
                    mode="r",
                    offset=self._map_offset or 0,
                    shape=(self._num_file_rows, *self._row_shape),
                )
            except (OSError, ValueError) as exc:
                raise DataError(f"{self.where}: cannot memory-map ({first_line(exc)})") from None
            self._map_pid = os.getpid()
        return self._map

    def _gather_mapped(self, file_rows: np.ndarray) -> np.ndarray:
        """Rows ``file_rows`` (any order) gathered from the memory map in one pass.

        Asking the kernel to read each block ahead (``madvise(WILLNEED)``) cost ~20% on cached
        data and was dropped: page faults read around the faulting page anyway.
        """
        return np.take(self._mapped(), file_rows, axis=0)

    def _storage_info(self) -> dict[str, Any]:
        return {"mmap": self.mmap}


def _enum_names(dtype: Any) -> tuple[np.ndarray, list[str]] | None:
    """An HDF5 enum's stored values (sorted) and their member names; None for other types."""
    import h5py

    mapping = h5py.check_enum_dtype(dtype)
    if not mapping:
        return None
    members = sorted(mapping.items(), key=lambda item: item[1])
    return np.array([v for _, v in members]), [k for k, _ in members]
