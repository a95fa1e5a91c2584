"""HDF5 datasets: lazy, validated, read in contiguous runs, in memory when they fit.

File layout (see ``docs/data.md``)::

    x         (N, ...) the data; row i is example i
    lengths   (N,) int       token data only: ids per row, <eos> included
    <labels>  (N,)           any 1-D aligned datasets, asked for by name
    x.attrs   kind, layout ("HW" or "CL" for 3-D data), scale, vocab (JSON list, tokens)

The file is opened lazily in the process that reads it (never before a fork, never pickled):
DataLoader workers and DDP ranks each open their own handle, read-only and without file
locking (network file systems). Construction opens the file once to validate it and closes it.
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
from .sampler import contiguous_runs
from .spec import KINDS, SPECIAL_TOKENS, DataSpec
from .tokens import encoding_extra

__all__ = ["H5Dataset", "open_h5", "DEFAULT_MEMORY_LIMIT"]

DEFAULT_MEMORY_LIMIT = 2 * 1024**3  # bytes of decoded data loaded whole by in_memory="auto"
_SCAN_BYTES = 64 * 1024**2  # validation reads the data in pieces of about this size
_BINARY_PROBE_ROWS = 4096  # uint8 without a scale attribute: rows probed for 0/1 data


def open_h5(path: str | os.PathLike[str]) -> Any:
    """Open ``path`` read-only without file locking, with one-line errors for bad files."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected an HDF5 file")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({_first_line(exc)})") from None
    if not is_hdf5:
        raise DataError(f"{path}: not an HDF5 file")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise DataError(
            f"{path}: cannot open as HDF5, the file may be truncated or corrupt "
            f"({_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def list_datasets(group: Any) -> list[str]:
    """Paths of every dataset below ``group`` (for 'missing key' messages)."""
    import h5py

    found: list[str] = []
    group.visititems(
        lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None
    )
    return found


def _decode_attr(value: Any) -> Any:
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
    value = _decode_attr(attrs["vocab"])
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


class H5Dataset:
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

    Batches are dicts: ``{"x": Tensor, "index": LongTensor of row ids (in the file),
    "lengths": LongTensor (tokens), "labels": {name: Tensor} (when labels are asked for)}``.
    Token batches are trimmed to their longest sequence.
    """

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
        self.path = str(path)
        self.key = key
        if in_memory not in (True, False, "auto"):
            raise DataError(f"in_memory must be True, False or 'auto', got {in_memory!r}")
        self.device = torch.device(device) if device is not None else None
        self._file: Any = None
        self._pid: int | None = None
        self._memory: torch.Tensor | None = None
        self.labels: dict[str, np.ndarray] = {}
        self.label_categories: dict[str, list[str]] = {}
        self._lengths: np.ndarray | None = None
        self._map: np.ndarray | None = None
        self._map_offset: int | None = None
        with open_h5(self.path) as f:
            # Validation reads through the same code as training, from this short-lived handle.
            self._file, self._pid = f, os.getpid()
            try:
                self._inspect(f, labels, lengths, kind, layout, scale, check)
            finally:
                self._file = self._pid = None
        self._start, self._stop = 0, self._num_file_rows
        if rows is not None:
            self._start, self._stop = self._check_rows(rows)
        stored = len(self) * int(np.prod(self._row_shape)) * self._raw_dtype.itemsize
        self.in_memory = stored <= memory_limit if in_memory == "auto" else bool(in_memory)
        if mmap not in (True, False, "auto"):
            raise DataError(f"mmap must be True, False or 'auto', got {mmap!r}")
        if mmap is True and self._map_offset is None:
            raise DataError(
                f"{self.where}: cannot be memory-mapped (only contiguous, uncompressed, "
                f"native-endian data can); use mmap='auto' or False"
            )
        self.mmap = bool(mmap) and self._map_offset is not None

    # ------------------------------------------------------------------ inspection

    @property
    def where(self) -> str:
        """``file:key``, the prefix of every error message about this data."""
        return f"{self.path}:{self.key}"

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
        n = self._num_file_rows
        if n == 0:
            raise DataError(f"{self.where}: the dataset is empty (0 rows)")
        attrs = self._attrs(f)
        kind = kind or _decode_attr(attrs.get("kind")) or None
        vocab = (
            read_vocab(self.where, attrs) if "vocab" in attrs else read_vocab(self.where, f.attrs)
        )
        if kind is None:
            kind = self._infer_kind(vocab)
        if kind not in KINDS:
            raise DataError(f"{self.where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self._load_labels(f, labels)
        if kind == "tokens":
            self._inspect_tokens(f, vocab, lengths_key)
        shape = self._example_shape(kind, layout or _decode_attr(attrs.get("layout")))
        self._scale = self._choose_scale(kind, scale, attrs)
        self.spec = DataSpec(
            kind=kind,
            shape=shape,
            dtype="int64" if kind == "tokens" else "float32",
            vocab=tuple(vocab) if kind == "tokens" else None,
            extra=encoding_extra(_decode_attr(attrs.get("tokenizer"))) if kind == "tokens" else {},
        )
        if check:
            self._check_values()

    def _open_source(self, f: Any) -> None:
        """Find the data in the open file; set row count, stored row shape and dtype."""
        if self.key not in f or not hasattr(f[self.key], "shape"):
            if _decode_attr(f.attrs.get("encoding-type")) == "anndata":
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
        self._check_truncated(f, ds)
        self._num_file_rows = int(ds.shape[0])
        self._row_shape = tuple(int(s) for s in ds.shape[1:])
        self._stored_dtype = np.dtype(ds.dtype)
        self._map_offset = _mappable_offset(f, ds)
        if any(s == 0 for s in self._row_shape):
            raise DataError(f"{self.where}: the dataset is empty (shape {tuple(ds.shape)})")

    def _check_truncated(self, f: Any, ds: Any) -> None:
        """A contiguous dataset whose bytes run past the end of the file means truncation."""
        offset = ds.id.get_offset()
        if offset is None:
            return
        size = os.path.getsize(self.path)
        if offset + ds.id.get_storage_size() > size:
            raise DataError(
                f"{self.where}: the file is truncated ({size} bytes, the data needs "
                f"{offset + ds.id.get_storage_size()})"
            )

    def _attrs(self, f: Any) -> dict[str, Any]:
        return dict(f[self.key].attrs)

    def _infer_kind(self, vocab: list[str] | None) -> str:
        if vocab is not None:
            return "tokens"
        ndim = len(self._row_shape)
        if ndim == 1:
            if self._stored_dtype.kind == "f" or self._stored_dtype == np.uint8:
                return "vectors"
            return "counts"
        return "grids"

    def _example_shape(self, kind: str, layout: str | None) -> tuple[int, ...]:
        shape = self._row_shape
        if kind in ("vectors", "counts", "tokens"):
            if len(shape) != 1:
                raise DataError(
                    f"{self.where}: {kind} data has shape (N, D), "
                    f"got {(self._num_file_rows, *shape)}"
                )
            return shape
        if len(shape) == 1:
            raise DataError(
                f"{self.where}: grid data has shape (N, C, L), (N, H, W) or (N, C, H, W), "
                f"got {(self._num_file_rows, *shape)}"
            )
        if len(shape) == 2:
            if layout is None:
                layout = "CL" if shape[0] <= 4 < shape[1] else "HW"
            if layout not in ("HW", "CL"):
                raise DataError(f"{self.where}: layout must be 'HW' or 'CL', got {layout!r}")
            return (1, *shape) if layout == "HW" else shape
        return shape

    def _choose_scale(self, kind: str, scale: float | str | None, attrs: dict[str, Any]) -> float:
        if kind == "tokens":
            return 1.0
        if scale is None:
            return 1.0
        if scale != "auto":
            try:
                return float(scale)
            except (TypeError, ValueError):
                raise DataError(
                    f"{self.where}: scale must be a number or 'auto', got {scale!r}"
                ) from None
        if "scale" in attrs:
            return float(_decode_attr(attrs["scale"]))
        if self._stored_dtype == np.uint8 and kind in ("vectors", "grids"):
            probe = self._read_range(0, min(self._num_file_rows, _BINARY_PROBE_ROWS))
            return 1.0 if int(probe.max()) <= 1 else 1.0 / 255.0
        return 1.0

    def _load_labels(self, f: Any, labels: str | Sequence[str] | bool | None) -> None:
        if labels is None or labels is False:
            return
        n = self._num_file_rows
        if labels is True:
            listed = _decode_attr(f.attrs.get("labels", ""))
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
            values, categories = self._read_label(f, name)
            if values.shape[0] != n:
                raise DataError(
                    f"{self.path}:{name}: labels have {values.shape[0]} rows but {self.key!r} "
                    f"has {n}"
                )
            self.labels[name] = values
            if categories is not None:
                self.label_categories[name] = categories

    def _read_label(self, f: Any, name: str) -> tuple[np.ndarray, list[str] | None]:
        """Values of one label column (numbers, or codes plus category names for strings)."""
        if name not in f or not hasattr(f[name], "shape"):
            keys = [k for k in list_datasets(f) if k != self.key]
            raise DataError(
                f"{self.path}: no label dataset {name!r}; datasets in the file: "
                f"{', '.join(keys) if keys else '(none)'}"
            )
        values, categories = _label_values(f"{self.path}:{name}", f[name][()])
        if categories is None and "label_names" in f[name].attrs:
            names = _decode_attr(f[name].attrs["label_names"])
            categories = json.loads(names) if isinstance(names, str) else list(names)
        return values, categories

    def _inspect_tokens(self, f: Any, vocab: list[str] | None, lengths_key: str | None) -> None:
        if vocab is None:
            raise DataError(f"{self.where}: token data needs a 'vocab' attribute (JSON list)")
        if self._stored_dtype.kind not in "iu":
            raise DataError(f"{self.where}: token ids must be integers, got {self._stored_dtype}")
        lengths_key = lengths_key or "lengths"
        if lengths_key not in f or not hasattr(f[lengths_key], "shape"):
            raise DataError(
                f"{self.path}: token data needs a lengths dataset {lengths_key!r}; datasets in "
                f"the file: {', '.join(list_datasets(f))}"
            )
        lengths = f[lengths_key][()]
        if lengths.ndim != 1 or lengths.shape[0] != self._num_file_rows:
            raise DataError(
                f"{self.path}:{lengths_key}: lengths have shape {lengths.shape}, expected "
                f"({self._num_file_rows},)"
            )
        max_length = self._row_shape[0]
        bad = np.flatnonzero((lengths < 1) | (lengths > max_length))
        if bad.size:
            raise DataError(
                f"{self.path}:{lengths_key}: {bad.size} lengths outside [1, {max_length}] "
                f"(rows {_first_rows(bad)})"
            )
        self._lengths = lengths.astype(np.int64)

    def _check_values(self) -> None:
        """NaN/inf (float data) and token ids beyond the vocabulary, scanned in pieces."""
        float_data = self._stored_dtype.kind == "f"
        tokens = self.spec.kind == "tokens"
        if not float_data and not tokens:
            return
        row_bytes = max(1, int(np.prod(self._row_shape)) * self._stored_dtype.itemsize)
        step = max(1, _SCAN_BYTES // row_bytes)
        bad_rows: list[np.ndarray] = []
        count = 0
        top = -1
        for a in range(0, self._num_file_rows, step):
            block = self._read_range(a, min(a + step, self._num_file_rows))
            flat = block.reshape(block.shape[0], -1)
            if float_data:
                finite = np.isfinite(flat)
                if not finite.all():
                    count += int(flat.size - np.count_nonzero(finite))
                    bad_rows.append(a + np.flatnonzero(~finite.all(axis=1)))
            else:
                low = int(flat.min())
                high = int(flat.max())
                top = max(top, high)
                if low < 0 or high >= len(self.spec.vocab or ()):
                    outside = (flat < 0) | (flat >= len(self.spec.vocab or ()))
                    count += int(np.count_nonzero(outside))
                    bad_rows.append(a + np.flatnonzero(outside.any(axis=1)))
        if count and float_data:
            rows = np.concatenate(bad_rows)
            raise DataError(
                f"{self.where}: {count} NaN/inf values in {rows.size} rows (first rows "
                f"{_first_rows(rows)}); clean the data or pass check=False to skip this check"
            )
        if count:
            rows = np.concatenate(bad_rows)
            raise DataError(
                f"{self.where}: {count} unknown token ids (largest {top}, the vocabulary has "
                f"{len(self.spec.vocab or ())} tokens) in rows {_first_rows(rows)}"
            )

    def _check_rows(self, rows: tuple[int, int]) -> tuple[int, int]:
        start, stop = (int(r) for r in rows)
        if not 0 <= start < stop <= self._num_file_rows:
            raise DataError(
                f"{self.where}: rows must satisfy 0 <= start < stop <= {self._num_file_rows}, "
                f"got {(start, stop)}"
            )
        return start, stop

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
        state = self.__dict__.copy()
        for name in ("_file", "_pid", "_ds", "_space", "_mem_spaces", "_map", "_map_pid"):
            state.pop(name, None)
        if state.get("_memory") is not None and state["_memory"].device.type != "cpu":
            state["_memory"] = None  # GPU copies are not sent to other processes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
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
                f"{self.where}: cannot read rows {start}:{stop} ({_first_line(exc)})"
            ) from None

    @property
    def _raw_dtype(self) -> np.dtype:
        return self._stored_dtype

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self._row_shape), dtype=self._raw_dtype)
        self._read_into(out, 0, start, stop)
        return out

    def _read_sorted(self, file_rows: np.ndarray) -> np.ndarray:
        """Rows with sorted unique ids, one slice read per contiguous run."""
        out = np.empty((file_rows.size, *self._row_shape), dtype=self._raw_dtype)
        starts, stops = contiguous_runs(file_rows)
        offset = 0
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            self._read_into(out, offset, a, b)
            offset += b - a
        return out

    def materialize(self) -> torch.Tensor:
        """Load the rows once (stored dtype) onto ``device``; used by in-memory datasets."""
        if self._memory is None:
            raw = torch.from_numpy(self._read_range(self._start, self._stop))
            self._memory = raw.to(self.device) if self.device is not None else raw
            self.close()  # everything is in memory now
        return self._memory

    def _raw_rows(self, rows: np.ndarray) -> torch.Tensor:
        """Stored values of dataset rows ``rows`` (any order, repeats allowed)."""
        if self.in_memory:
            memory = self.materialize()
            if memory.device.type == "cpu":
                # numpy's single-threaded take: torch's gather slows down badly when its
                # threads compete for busy cores
                return torch.from_numpy(np.take(memory.numpy(), rows, axis=0))
            return memory[torch.from_numpy(rows).to(memory.device)]
        file_rows = rows + self._start
        if self.mmap:
            return torch.from_numpy(self._gather_mapped(file_rows))
        order = np.argsort(file_rows, kind="stable")
        ordered = file_rows[order]
        if ordered.size > 1 and not np.all(ordered[1:] != ordered[:-1]):
            # repeated rows (padding): read each once, then gather
            unique = np.unique(file_rows)
            raw = self._read_sorted(unique)
            return torch.from_numpy(np.take(raw, np.searchsorted(unique, file_rows), axis=0))
        raw = self._read_sorted(ordered)
        if np.array_equal(ordered, file_rows):  # sequential: no gather needed
            return torch.from_numpy(raw)
        position = np.empty_like(order)
        position[order] = np.arange(order.size)
        return torch.from_numpy(np.take(raw, position, axis=0))

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
                raise DataError(f"{self.where}: cannot memory-map ({_first_line(exc)})") from None
            self._map_pid = os.getpid()
        return self._map

    def _gather_mapped(self, file_rows: np.ndarray) -> np.ndarray:
        """Rows ``file_rows`` (any order) gathered from the memory map in one pass.

        Asking the kernel to read each block ahead (``madvise(WILLNEED)``) cost ~20% on cached
        data and was dropped: page faults read around the faulting page anyway.
        """
        return np.take(self._mapped(), file_rows, axis=0)

    def _decode(self, raw: torch.Tensor) -> torch.Tensor:
        """Stored values to the batch dtype: int64 token ids, else scaled float32."""
        if self.spec.kind == "tokens":
            return raw.long()
        x = raw.float() if raw.dtype != torch.float32 else raw
        if self._scale != 1.0:
            x = x * self._scale
        if tuple(x.shape[1:]) != self.spec.shape:  # (N, H, W) -> (N, 1, H, W)
            x = x.reshape(x.shape[0], *self.spec.shape)
        return x

    def read_batches(
        self, rows: np.ndarray, bounds: np.ndarray | None = None
    ) -> list[dict[str, Any]]:
        """Batches of dataset rows ``rows``: batch k is ``rows[bounds[k]:bounds[k + 1]]``.

        One read (or one in-memory gather) serves all of them; this is what the loader calls
        once per fetch.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if bounds is None:
            bounds = np.array([0, rows.size])
        x = self._decode(self._raw_rows(rows))
        device = x.device
        index = torch.from_numpy(rows + self._start)
        lengths = labels = None
        if self._lengths is not None:
            lengths = torch.from_numpy(self._lengths[rows + self._start])
        if self.labels:
            labels = {
                name: _label_tensor(values[rows + self._start])
                for name, values in self.labels.items()
            }
        out = []
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            batch: dict[str, Any] = {"x": x[a:b]}
            if lengths is not None:
                batch_lengths = lengths[a:b]
                longest = int(batch_lengths.max())
                batch["x"] = batch["x"][:, :longest].contiguous()
                batch["lengths"] = batch_lengths.to(device)
            batch["index"] = index[a:b].to(device)
            if labels is not None:
                batch["labels"] = {k: v[a:b].to(device) for k, v in labels.items()}
            out.append(batch)
        return out

    def read(self, rows: Sequence[int] | np.ndarray | slice) -> dict[str, Any]:
        """One batch of the given dataset rows (any order)."""
        if isinstance(rows, slice):
            rows = np.arange(len(self))[rows]
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            raise DataError(f"{self.where}: no rows asked for")
        if rows.min() < 0 or rows.max() >= len(self):
            raise DataError(f"{self.where}: row ids must be in [0, {len(self)})")
        return self.read_batches(rows)[0]

    # ------------------------------------------------------------------ map-style access

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, i: int) -> dict[str, Any]:
        """One example (slow path, one read per item: prefer :func:`make_loader`)."""
        i = int(i)
        if i < 0:
            i += len(self)
        batch = self.read([i])
        out: dict[str, Any] = {"x": batch["x"][0], "index": batch["index"][0]}
        if "lengths" in batch:
            out["lengths"] = batch["lengths"][0]
        if "labels" in batch:
            out["labels"] = {k: v[0] for k, v in batch["labels"].items()}
        return out

    # ------------------------------------------------------------------ subsets

    def subset(self, start: int, stop: int) -> H5Dataset:
        """The same data restricted to dataset rows ``start:stop`` (no new validation)."""
        start, stop = self._check_rows((self._start + start, self._start + stop))
        if stop > self._stop:
            raise DataError(f"{self.where}: subset {start}:{stop} is outside the dataset")
        new = self.__class__.__new__(self.__class__)
        new.__setstate__(self.__getstate__())
        new._start, new._stop = start, stop
        new._memory = None
        return new

    def split(self, fraction: float) -> tuple[H5Dataset, H5Dataset]:
        """``(first, last)`` contiguous parts, the last holding ``fraction`` of the rows.

        Files written by genlatent's importers are pre-shuffled, so the tail is a random
        validation split.
        """
        if not 0.0 < fraction < 1.0:
            raise DataError(f"split fraction must be in (0, 1), got {fraction}")
        n_last = max(1, round(len(self) * fraction))
        if n_last >= len(self):
            raise DataError(f"{self.where}: {len(self)} rows are too few to split")
        return self.subset(0, len(self) - n_last), self.subset(len(self) - n_last, len(self))

    def describe(self) -> dict[str, Any]:
        """A summary for ``genlatent data info``: path, key, rows, spec, labels, mode."""
        info: dict[str, Any] = {
            "path": self.path,
            "key": self.key,
            "rows": len(self),
            "spec": self.spec.to_dict(),
            "stored_shape": [self._num_file_rows, *self._row_shape],
            "stored_dtype": str(self._stored_dtype),
            "scale": self._scale,
            "in_memory": self.in_memory,
            "mmap": self.mmap,
            "labels": {k: str(v.dtype) for k, v in self.labels.items()},
        }
        if self.label_categories:
            info["label_categories"] = self.label_categories
        return info

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, key={self.key!r}, rows={len(self)}, "
            f"kind={self.spec.kind!r}, shape={list(self.spec.shape)}, in_memory={self.in_memory})"
        )


def _mappable_offset(f: Any, ds: Any) -> int | None:
    """File offset of a dataset that np.memmap can read as is, else None."""
    try:
        offset = ds.id.get_offset()
    except Exception:  # pragma: no cover - virtual or external datasets
        return None
    if offset is None or f.driver != "sec2" or ds.dtype.kind not in "biuf":
        return None
    if ds.dtype.byteorder not in ("=", "|") and ds.dtype.byteorder != _native_order():
        return None
    if ds.id.get_storage_size() != ds.size * ds.dtype.itemsize:
        return None  # not fully allocated (or filtered)
    return int(offset)


def _native_order() -> str:
    import sys

    return "<" if sys.byteorder == "little" else ">"


def _first_rows(rows: np.ndarray, n: int = 5) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:n])
    return shown + (", ..." if rows.size > n else "")


def _label_values(where: str, values: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
    """Numbers as they are; strings become integer codes plus the sorted category names."""
    if values.ndim != 1:
        raise DataError(f"{where}: labels must be 1-D, got shape {values.shape}")
    if values.dtype.kind in "biuf":
        return values, None
    if values.dtype.kind in "SOU":
        text = np.array(
            [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values.tolist()]
        )
        categories, codes = np.unique(text, return_inverse=True)
        return codes.astype(np.int64), categories.tolist()
    raise DataError(f"{where}: labels must be numbers or strings, got dtype {values.dtype}")


def _label_tensor(values: np.ndarray) -> torch.Tensor:
    if values.dtype.kind == "f":
        return torch.from_numpy(values.astype(np.float32, copy=False))
    if values.dtype.kind == "b":
        return torch.from_numpy(values)
    return torch.from_numpy(values.astype(np.int64, copy=False))
