"""The storage-free half of every reader: rows of examples, their spec, labels and batches.

:class:`RowDataset` holds what does not depend on where rows are stored: inferring the
:class:`DataSpec` from the stored shape and dtype, checking values, aligned labels, row ranges
(``subset`` / ``split``), the in-memory copy, and turning rows into batch dicts. A reader
(HDF5, AnnData, a plugin's format) subclasses it and supplies :meth:`RowDataset._read_into`;
see the reader contract in :mod:`genlatent.parts`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..dataspec import KINDS, DataSpec
from ..errors import DataError
from .sampler import contiguous_runs
from .tokens import encoding_extra

__all__ = ["RowDataset", "DEFAULT_MEMORY_LIMIT"]

DEFAULT_MEMORY_LIMIT = 2 * 1024**3  # bytes of decoded data loaded whole by in_memory="auto"
_SCAN_BYTES = 64 * 1024**2  # validation reads the data in pieces of about this size
_BINARY_PROBE_ROWS = 4096  # uint8 without a scale attribute: rows probed for 0/1 data


class RowDataset:
    """Examples along axis 0 of some storage, with aligned labels; batches are dicts.

    Subclasses set ``_num_file_rows``, ``_row_shape`` and ``_stored_dtype`` (what is stored),
    then call :meth:`_resolve_kind`, optionally :meth:`_add_label` / :meth:`_set_lengths`,
    :meth:`_finish_spec` and :meth:`_choose_rows`, and implement :meth:`_read_into`.

    Batches are dicts: ``{"x": Tensor, "index": LongTensor of row ids (in the file),
    "lengths": LongTensor (tokens), "labels": {name: Tensor} (when labels are asked for),
    "condition": float Tensor (B, C) (when a model's conditions are attached: see
    :func:`genlatent.conditions.attach`)}``. Token batches are trimmed to their longest
    sequence.
    """

    #: the key :func:`~genlatent.data.open_dataset` passes when none is given
    default_key: ClassVar[str] = "x"
    #: what the reader opens, for "no reader opens it" messages
    description: ClassVar[str] = ""

    @classmethod
    def can_open(cls, path: Path) -> bool:
        """Whether this reader is the one for ``path`` (cheap: suffix, signature, listing)."""
        return False

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: str,
        *,
        in_memory: bool | str = "auto",
        device: str | torch.device | None = None,
    ) -> None:
        self.path = str(path)
        self.key = key
        if in_memory not in (True, False, "auto"):
            raise DataError(f"in_memory must be True, False or 'auto', got {in_memory!r}")
        self.device = torch.device(device) if device is not None else None
        self._memory: torch.Tensor | None = None
        self.labels: dict[str, np.ndarray] = {}
        self.label_categories: dict[str, list[str]] = {}
        self._lengths: np.ndarray | None = None
        self._condition: np.ndarray | None = None
        self._scale = 1.0
        self.in_memory = False

    @property
    def where(self) -> str:
        """``file:key``, the prefix of every error message about this data."""
        return f"{self.path}:{self.key}"

    # ------------------------------------------------------------------ the spec

    def _resolve_kind(self, kind: str | None, vocab: Sequence[str] | None) -> str:
        """The data kind: ``kind`` if given, else inferred from the stored rows."""
        if self._num_file_rows == 0:
            raise DataError(f"{self.where}: the dataset is empty (0 rows)")
        if kind is None:
            kind = self._infer_kind(vocab)
        if kind not in KINDS:
            raise DataError(f"{self.where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        return kind

    def _infer_kind(self, vocab: Sequence[str] | None) -> str:
        if vocab is not None:
            return "tokens"
        if len(self._row_shape) == 1:
            if self._stored_dtype.kind == "f" or self._stored_dtype == np.uint8:
                return "vectors"
            return "counts"
        return "grids"

    def _check_token_storage(self, vocab: Sequence[str] | None) -> None:
        if vocab is None:
            raise DataError(f"{self.where}: token data needs a 'vocab' attribute (JSON list)")
        if self._stored_dtype.kind not in "iu":
            raise DataError(f"{self.where}: token ids must be integers, got {self._stored_dtype}")

    def _set_lengths(self, where: str, lengths: np.ndarray) -> None:
        """Token lengths per row (``<eos>`` included), checked against the row length."""
        if lengths.ndim != 1 or lengths.shape[0] != self._num_file_rows:
            raise DataError(
                f"{where}: lengths have shape {lengths.shape}, expected ({self._num_file_rows},)"
            )
        max_length = self._row_shape[0]
        bad = np.flatnonzero((lengths < 1) | (lengths > max_length))
        if bad.size:
            raise DataError(
                f"{where}: {bad.size} lengths outside [1, {max_length}] (rows {_first_rows(bad)})"
            )
        self._lengths = lengths.astype(np.int64)

    def _add_label(self, name: str, values: np.ndarray, categories: list[str] | None) -> None:
        if values.shape[0] != self._num_file_rows:
            raise DataError(
                f"{self.path}:{name}: labels have {values.shape[0]} rows but {self.key!r} "
                f"has {self._num_file_rows}"
            )
        self.labels[name] = values
        if categories is not None:
            self.label_categories[name] = categories

    def set_condition(self, matrix: np.ndarray) -> None:
        """Condition vectors of every stored row, ``(rows in the file, C)`` float32, returned
        as ``batch["condition"]`` (see :func:`genlatent.conditions.attach`)."""
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != self._num_file_rows:
            raise DataError(
                f"{self.where}: conditions have shape {matrix.shape}, expected "
                f"({self._num_file_rows}, C)"
            )
        self._condition = matrix

    def _finish_spec(
        self,
        kind: str,
        vocab: Sequence[str] | None,
        layout: str | None,
        scale: float | str | None,
        attrs: dict[str, Any],
        check: bool,
    ) -> None:
        """Set ``spec`` and the scale from the stored rows; scan the values when ``check``."""
        shape = self._example_shape(kind, layout)
        self._scale = self._choose_scale(kind, scale, attrs)
        self.spec = DataSpec(
            kind=kind,
            shape=shape,
            dtype="int64" if kind == "tokens" else "float32",
            vocab=tuple(vocab) if kind == "tokens" and vocab is not None else None,
            extra=encoding_extra(attrs.get("tokenizer")) if kind == "tokens" else {},
        )
        if check:
            self._check_values()

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
        if kind == "tokens" or scale is None:
            return 1.0
        if scale != "auto":
            try:
                return float(scale)
            except (TypeError, ValueError):
                raise DataError(
                    f"{self.where}: scale must be a number or 'auto', got {scale!r}"
                ) from None
        if "scale" in attrs:
            return float(attrs["scale"])
        if self._stored_dtype == np.uint8 and kind in ("vectors", "grids"):
            probe = self._read_range(0, min(self._num_file_rows, _BINARY_PROBE_ROWS))
            return 1.0 if int(probe.max()) <= 1 else 1.0 / 255.0
        return 1.0

    def _check_values(self) -> None:
        """NaN/inf (float data) and token ids beyond the vocabulary, scanned in pieces."""
        float_data = self._stored_dtype.kind == "f"
        tokens = self.spec.kind == "tokens"
        if not float_data and not tokens:
            return
        vocab_size = len(self.spec.vocab or ())
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
                low, high = int(flat.min()), int(flat.max())
                top = max(top, high)
                if low < 0 or high >= vocab_size:
                    outside = (flat < 0) | (flat >= vocab_size)
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
                f"{vocab_size} tokens) in rows {_first_rows(rows)}"
            )

    # ------------------------------------------------------------------ rows in use

    def _choose_rows(
        self, rows: tuple[int, int] | None, in_memory: bool | str, memory_limit: int
    ) -> None:
        """Use stored rows ``rows`` (default all); decide whether they are held in memory."""
        self._start, self._stop = 0, self._num_file_rows
        if rows is not None:
            self._start, self._stop = self._check_rows(rows)
        stored = len(self) * int(np.prod(self._row_shape)) * self._stored_dtype.itemsize
        self.in_memory = stored <= memory_limit if in_memory == "auto" else bool(in_memory)

    def _check_rows(self, rows: tuple[int, int]) -> tuple[int, int]:
        start, stop = (int(r) for r in rows)
        if not 0 <= start < stop <= self._num_file_rows:
            raise DataError(
                f"{self.where}: rows must satisfy 0 <= start < stop <= {self._num_file_rows}, "
                f"got {(start, stop)}"
            )
        return start, stop

    def close(self) -> None:
        """Release open files (readers that hold some); reading reopens them."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if state.get("_memory") is not None and state["_memory"].device.type != "cpu":
            state["_memory"] = None  # GPU copies are not sent to other processes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ reading rows

    def _read_into(self, out: np.ndarray, offset: int, start: int, stop: int) -> None:
        """Copy stored rows ``start:stop`` into ``out[offset:offset + stop - start]``."""
        raise NotImplementedError

    def _read_range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self._row_shape), dtype=self._stored_dtype)
        self._read_into(out, 0, start, stop)
        return out

    def _read_sorted(self, file_rows: np.ndarray) -> np.ndarray:
        """Rows with sorted unique ids, one read per contiguous run."""
        out = np.empty((file_rows.size, *self._row_shape), dtype=self._stored_dtype)
        starts, stops = contiguous_runs(file_rows)
        offset = 0
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            self._read_into(out, offset, a, b)
            offset += b - a
        return out

    def _read_rows(self, file_rows: np.ndarray) -> np.ndarray:
        """Stored rows ``file_rows`` (any order, repeats allowed) read from storage."""
        order = np.argsort(file_rows, kind="stable")
        ordered = file_rows[order]
        if ordered.size > 1 and not np.all(ordered[1:] != ordered[:-1]):
            # repeated rows (padding): read each once, then gather
            unique = np.unique(file_rows)
            raw = self._read_sorted(unique)
            return np.take(raw, np.searchsorted(unique, file_rows), axis=0)
        raw = self._read_sorted(ordered)
        if np.array_equal(ordered, file_rows):  # sequential: no gather needed
            return raw
        position = np.empty_like(order)
        position[order] = np.arange(order.size)
        return np.take(raw, position, axis=0)

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
        return torch.from_numpy(self._read_rows(rows + self._start))

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
        lengths = labels = condition = None
        if getattr(self, "_condition", None) is not None:
            condition = torch.from_numpy(self._condition[rows + self._start])
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
            if condition is not None:
                batch["condition"] = condition[a:b].to(device)
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
        if "condition" in batch:
            out["condition"] = batch["condition"][0]
        return out

    # ------------------------------------------------------------------ subsets

    def subset(self, start: int, stop: int) -> RowDataset:
        """The same data restricted to dataset rows ``start:stop`` (no new validation)."""
        start, stop = self._check_rows((self._start + start, self._start + stop))
        if stop > self._stop:
            raise DataError(f"{self.where}: subset {start}:{stop} is outside the dataset")
        new = self.__class__.__new__(self.__class__)
        new.__setstate__(self.__getstate__())
        new._start, new._stop = start, stop
        new._memory = None
        return new

    def split(self, fraction: float) -> tuple[RowDataset, RowDataset]:
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
            **self._storage_info(),
            "labels": {k: str(v.dtype) for k, v in self.labels.items()},
        }
        if self.label_categories:
            info["label_categories"] = self.label_categories
        return info

    def _storage_info(self) -> dict[str, Any]:
        """Reader-specific entries of :meth:`describe`."""
        return {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, key={self.key!r}, rows={len(self)}, "
            f"kind={self.spec.kind!r}, shape={list(self.spec.shape)}, in_memory={self.in_memory})"
        )


def _first_rows(rows: np.ndarray, n: int = 5) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:n])
    return shown + (", ..." if rows.size > n else "")


def label_values(where: str, values: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
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
