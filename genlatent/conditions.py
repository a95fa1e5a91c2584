"""Conditions: known per-example parameters (temperature, cell type, batch) a model is
conditioned on, and how they become the float vector ``batch["condition"]`` ``(B, C)``.

A condition is a 1-D column aligned with the examples, read by the dataset's own label
machinery (HDF5 datasets, ``.h5ad`` obs columns, a plugin reader's labels). Each column is
encoded as:

- **numeric** (float columns by default): standardised, ``(value - mean) / std`` with mean
  and std measured on the training file, one entry;
- **categorical** (strings, HDF5 enums, ``.h5ad`` categoricals, integer codes, booleans):
  one-hot over the categories seen in the training file, one entry per category.

``NAME:numeric`` or ``NAME:categorical`` overrides the choice (integer temperatures are
numeric, say). The encoding is part of the model: the resolved spec records it under
``"condition"`` (a list of ``{"name", "kind", "mean", "std"}`` or ``{"name", "kind",
"categories"}``), so a saved model encodes conditions the same way in any later session.
A spec without the field is an unconditioned model, as every model saved before conditions
existed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import DataError, SpecError

__all__ = [
    "ConditionColumn",
    "ConditionEncoding",
    "KINDS",
    "MAX_CATEGORIES",
    "attach",
    "parse_names",
    "parse_values",
]

KINDS = ("numeric", "categorical")
#: a categorical condition with more categories than this is almost surely a numeric column
MAX_CATEGORIES = 1000


def parse_names(names: str | Iterable[str] | None) -> list[tuple[str, str | None]]:
    """``["T", "n:numeric"]`` -> ``[("T", None), ("n", "numeric")]`` (None: by the column's
    type); a single string is one name."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    out: list[tuple[str, str | None]] = []
    for item in names:
        if not isinstance(item, str) or not item.strip():
            raise SpecError(f"condition: expected a column name (NAME or NAME:KIND), got {item!r}")
        name, _, kind = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        kind = kind.strip() or None
        if kind is not None and kind not in KINDS:
            raise SpecError(
                f"condition {item!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}"
            )
        if any(n == name for n, _ in out):
            raise SpecError(f"condition {name!r} is named twice")
        out.append((name, kind))
    return out


@dataclass(frozen=True)
class ConditionColumn:
    """One condition column and its encoding."""

    name: str
    kind: str
    mean: float = 0.0
    std: float = 1.0
    categories: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        """Entries of the condition vector this column fills."""
        return 1 if self.kind == "numeric" else len(self.categories)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "numeric":
            return {"name": self.name, "kind": "numeric", "mean": self.mean, "std": self.std}
        return {"name": self.name, "kind": "categorical", "categories": list(self.categories)}

    def describe(self) -> str:
        if self.kind == "numeric":
            return f"{self.name} (numeric, mean {self.mean:.4g}, std {self.std:.4g})"
        shown = ", ".join(self.categories[:8]) + (", ..." if len(self.categories) > 8 else "")
        return f"{self.name} (categorical, {len(self.categories)}: {shown})"

    # ------------------------------------------------------------------ encoding

    def encode(self, where: str, values: np.ndarray, names: Sequence[str] | None) -> np.ndarray:
        """Stored values of this column (numbers, or integer codes with category ``names``)
        as ``(N, width)`` float32; NaN, missing and unknown categories are refused."""
        if self.kind == "numeric":
            if names is not None or values.dtype.kind not in "biuf":
                raise DataError(f"{where}: condition {self.name!r} is numeric in the model, "
                                f"but the column holds categories")
            numbers = values.astype(np.float64)
            bad = np.flatnonzero(~np.isfinite(numbers))
            if bad.size:
                raise DataError(
                    f"{where}: condition {self.name!r} has {bad.size} NaN/inf values "
                    f"(first row {int(bad[0])}); expected a finite number in every row"
                )
            return ((numbers - self.mean) / self.std).astype(np.float32)[:, None]
        labels = category_names(where, self.name, values, names)
        index = {c: i for i, c in enumerate(self.categories)}
        codes = np.array([index.get(v, -1) for v in labels.tolist()], dtype=np.int64)
        unknown = np.flatnonzero(codes < 0)
        if unknown.size:
            raise DataError(
                f"{where}: condition {self.name!r} has category {labels[unknown[0]]!r} "
                f"(row {int(unknown[0])}) unseen in training; expected one of "
                f"{', '.join(self.categories)}"
            )
        out = np.zeros((codes.size, self.width), dtype=np.float32)
        out[np.arange(codes.size), codes] = 1.0
        return out

    def encode_value(self, value: Any) -> np.ndarray:
        """One user-given value (a number, or a category's name) as ``(width,)`` float32."""
        if self.kind == "numeric":
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise DataError(
                    f"condition {self.name}={value!r}: expected a number"
                ) from None
            if not math.isfinite(number):
                raise DataError(f"condition {self.name}={value!r}: expected a finite number")
            return np.array([(number - self.mean) / self.std], dtype=np.float32)
        text = _category_text(value)
        if text not in self.categories:
            raise DataError(
                f"condition {self.name}={value!r}: unknown category; the model knows "
                f"{', '.join(self.categories)}"
            )
        out = np.zeros(self.width, dtype=np.float32)
        out[self.categories.index(text)] = 1.0
        return out

    def decode(self, encoded: np.ndarray) -> np.ndarray:
        """``(N, width)`` encoded values back to numbers or category names (for output files)."""
        if self.kind == "numeric":
            return (encoded[:, 0].astype(np.float64) * self.std + self.mean).astype(np.float32)
        return np.array(self.categories, dtype=object)[np.argmax(encoded, axis=1)]


def _category_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def category_names(
    where: str, name: str, values: np.ndarray, names: Sequence[str] | None
) -> np.ndarray:
    """Each row's category as text: the name of its code, or the number itself."""
    if names is not None:
        codes = values.astype(np.int64)
        missing = np.flatnonzero((codes < 0) | (codes >= len(names)))
        if missing.size:
            raise DataError(
                f"{where}: condition {name!r} is missing in {missing.size} rows (first row "
                f"{int(missing[0])}); expected a category in every row"
            )
        return np.asarray(names, dtype=object)[codes]
    if values.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataError(
                f"{where}: condition {name!r} has {bad.size} NaN values (first row "
                f"{int(bad[0])}); expected a category in every row"
            )
    return np.array([_category_text(v) for v in values.tolist()], dtype=object)


@dataclass(frozen=True)
class ConditionEncoding:
    """The ordered condition columns of a model; ``dim`` entries in all."""

    columns: tuple[ConditionColumn, ...] = field(default_factory=tuple)

    @property
    def dim(self) -> int:
        return sum(c.width for c in self.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __bool__(self) -> bool:
        return bool(self.columns)

    def to_spec(self) -> list[dict[str, Any]]:
        """The spec's ``"condition"`` field."""
        return [c.to_dict() for c in self.columns]

    @classmethod
    def from_spec(cls, entries: Any) -> ConditionEncoding:
        """Read (and check) a spec's ``"condition"`` field."""
        if entries is None:
            return cls()
        if not isinstance(entries, list):
            raise SpecError(f"spec field 'condition' must be a list, got {entries!r}")
        columns = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise SpecError(f"spec field 'condition': bad entry {entry!r}")
            kind = entry.get("kind")
            if kind == "numeric":
                mean, std = entry.get("mean"), entry.get("std")
                ok = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                         and math.isfinite(v) for v in (mean, std))
                if not ok or std <= 0:
                    raise SpecError(
                        f"spec field 'condition': {entry['name']!r} needs a finite mean and a "
                        f"std > 0, got {entry!r}"
                    )
                columns.append(ConditionColumn(entry["name"], kind, float(mean), float(std)))
            elif kind == "categorical":
                cats = entry.get("categories")
                if not isinstance(cats, list) or not cats or not all(
                    isinstance(c, str) for c in cats
                ) or len(set(cats)) != len(cats):
                    raise SpecError(
                        f"spec field 'condition': {entry['name']!r} needs a list of distinct "
                        f"category names, got {cats!r}"
                    )
                columns.append(ConditionColumn(entry["name"], kind, categories=tuple(cats)))
            else:
                raise SpecError(
                    f"spec field 'condition': {entry['name']!r} has kind {kind!r}; expected "
                    f"one of {', '.join(KINDS)}"
                )
        if len({c.name for c in columns}) != len(columns):
            raise SpecError("spec field 'condition': a column is named twice")
        return cls(tuple(columns))

    # ------------------------------------------------------------------ measuring

    @classmethod
    def measure(cls, dataset: Any, names: str | Iterable[str] | None) -> ConditionEncoding:
        """The encoding of the columns ``names`` (``NAME`` or ``NAME:KIND``), measured on every
        row of ``dataset`` (the training file): mean and std, or the categories present."""
        parsed = parse_names(names)
        if not parsed:
            return cls()
        require_labels(dataset, [n for n, _ in parsed])
        start, stop = _row_range(dataset)
        where = str(dataset.path)
        columns = []
        for name, kind in parsed:
            values = np.asarray(dataset.labels[name])[start:stop]
            cats = dataset.label_categories.get(name)
            here = f"{where}:{name}"
            if kind is None:
                kind = "numeric" if values.dtype.kind == "f" and cats is None else "categorical"
            if kind == "numeric":
                if cats is not None:
                    raise DataError(
                        f"{here}: condition {name!r} holds categories ({', '.join(cats[:5])}"
                        f"{', ...' if len(cats) > 5 else ''}); it cannot be numeric"
                    )
                probe = ConditionColumn(name, "numeric")
                numbers = probe.encode(here, values, None)[:, 0].astype(np.float64)
                std = float(numbers.std())
                columns.append(ConditionColumn(
                    name, "numeric", float(numbers.mean()), std if std > 0 else 1.0
                ))
            else:
                labels = category_names(here, name, values, cats)
                present = set(labels.tolist())
                order = [c for c in cats if c in present] if cats is not None else _sorted(present)
                if len(order) > MAX_CATEGORIES:
                    raise DataError(
                        f"{here}: condition {name!r} has {len(order)} distinct values, more "
                        f"than {MAX_CATEGORIES} categories; write {name}:numeric to use it as "
                        f"a number"
                    )
                columns.append(ConditionColumn(name, "categorical", categories=tuple(order)))
        return cls(tuple(columns))

    # ------------------------------------------------------------------ encoding

    def encode_dataset(self, dataset: Any) -> np.ndarray:
        """Every stored row's condition vector, ``(rows in the file, dim)`` float32."""
        require_labels(dataset, self.names)
        where = str(dataset.path)
        parts = [
            column.encode(f"{where}:{column.name}", np.asarray(dataset.labels[column.name]),
                          dataset.label_categories.get(column.name))
            for column in self.columns
        ]
        return np.concatenate(parts, axis=1)

    def encode_values(self, values: Mapping[str, Any], n: int) -> torch.Tensor:
        """``n`` condition vectors ``(n, dim)`` from user values: one value per column name
        (the same for every row) or a sequence of ``n`` values."""
        unknown = [k for k in values if k not in self.names]
        missing = [c.name for c in self.columns if c.name not in values]
        if unknown or missing:
            wrong = (f"unknown {', '.join(map(repr, unknown))}" if unknown
                     else f"missing {', '.join(map(repr, missing))}")
            raise DataError(
                f"--condition: {wrong}; the model is conditioned on "
                f"{', '.join(self.names)} (give each as NAME=VALUE)"
            )
        parts = []
        for column in self.columns:
            value = values[column.name]
            if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
                items = list(np.asarray(value).tolist())
                if len(items) != n:
                    raise DataError(
                        f"condition {column.name}: {len(items)} values given for {n} rows"
                    )
                parts.append(np.stack([column.encode_value(v) for v in items]))
            else:
                parts.append(np.broadcast_to(column.encode_value(value), (n, column.width)))
        return torch.from_numpy(np.ascontiguousarray(np.concatenate(parts, axis=1)))

    def decode(self, encoded: np.ndarray) -> dict[str, np.ndarray]:
        """Condition vectors ``(N, dim)`` back to one array per column (numbers or names)."""
        out, offset = {}, 0
        for column in self.columns:
            out[column.name] = column.decode(encoded[:, offset : offset + column.width])
            offset += column.width
        return out


def _sorted(values: set[str]) -> list[str]:
    """Category names in a stable order: numerically when they are all numbers."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _row_range(dataset: Any) -> tuple[int, int]:
    start = int(getattr(dataset, "_start", 0))
    stop = int(getattr(dataset, "_stop", start + len(dataset)))
    return start, stop


def require_labels(dataset: Any, names: Sequence[str]) -> None:
    """Load the label columns ``names`` into ``dataset`` if the reader did not already."""
    missing = [n for n in names if n not in dataset.labels]
    if missing and callable(getattr(dataset, "add_labels", None)):
        dataset.add_labels(missing)
        missing = [n for n in names if n not in dataset.labels]
    if missing:
        raise DataError(
            f"{dataset.path}: no condition column {missing[0]!r}; labels this reader provides: "
            f"{', '.join(dataset.labels) or '(none)'}"
        )


def attach(dataset: Any, encoding: ConditionEncoding) -> Any:
    """Make ``dataset``'s batches carry ``"condition"`` ``(B, dim)`` under ``encoding`` (every
    row is encoded now, so a bad value fails before any work). Returns the dataset."""
    if not encoding or getattr(dataset, "condition_encoding", None) == encoding:
        return dataset
    matrix = encoding.encode_dataset(dataset)
    if not callable(getattr(dataset, "set_condition", None)):
        raise DataError(
            f"{dataset.path}: its reader ({type(dataset).__name__}) cannot carry conditions; "
            f"subclass genlatent.data.RowDataset or ArrayDataset"
        )
    dataset.set_condition(matrix)
    dataset.condition_encoding = encoding
    return dataset


def parse_values(items: Iterable[str]) -> dict[str, str | float]:
    """``["T=2.0", "cell_type=B"]`` -> ``{"T": 2.0, "cell_type": "B"}`` (numbers when they
    parse as numbers: categories are matched by their text either way)."""
    out: dict[str, str | float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise DataError(f"--condition {item!r}: expected NAME=VALUE, e.g. T=2.0")
        raw = raw.strip()
        try:
            value: str | float = float(raw)
        except ValueError:
            value = raw
        out[name.strip()] = value
    return out
