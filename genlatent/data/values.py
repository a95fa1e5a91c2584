"""What values a dataset holds (range, integers or not), read once in blocks, and which
likelihoods can score them.

:func:`summarize_values` streams a dataset through its public ``read`` method, one block of rows
at a time, so a file larger than memory is never loaded whole (``.h5ad`` CSR rows are densified
per block by the dataset itself). The summary is of the values the model sees (after the
dataset's ``scale``). :func:`genlatent.build` uses it to choose the default likelihood and to
refuse a likelihood whose ``support`` the data leave::

    from genlatent.data import H5Dataset
    from genlatent.data.values import summarize_values

    train = H5Dataset("spectra.h5")
    values = summarize_values(train)            # ValueSummary(min=-1.3, max=1.3, integer=False)
    model = genlatent.build(spec, values=values)  # default likelihood: gaussian
"""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.distributions import constraints

from ..errors import DataError

#: Values read per block (4 MB of float32: blocks that stay in the CPU cache summarise about
#: 3x faster than 32 MB ones).
BLOCK_VALUES = 1 << 20


@dataclass(frozen=True)
class ValueSummary:
    """Range and integrality of every value in a dataset, and where they came from."""

    source: str  #: ``file:key`` (or what the caller named)
    count: int  #: number of values (rows x values per row)
    min: float
    max: float
    integer: bool  #: every value is a whole number

    @property
    def unit_interval(self) -> bool:
        return 0.0 <= self.min and self.max <= 1.0

    def describe(self) -> str:
        """``values in [-1.3, 1.3], not all integers``: the phrase error messages use."""
        kind = "all integers" if self.integer else "not all integers"
        return f"values in [{_num(self.min)}, {_num(self.max)}], {kind}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# dataset object -> its summary (subsets and splits are new objects, so never share one)
_CACHE: weakref.WeakKeyDictionary[Any, ValueSummary] = weakref.WeakKeyDictionary()


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def _fold(parts: list[tuple[int, float, float, bool]], source: str) -> ValueSummary:
    count = sum(p[0] for p in parts)
    if count == 0:
        raise DataError(f"{source}: no values to summarise")
    return ValueSummary(
        source=source,
        count=count,
        min=min(p[1] for p in parts),
        max=max(p[2] for p in parts),
        integer=all(p[3] for p in parts),
    )


def _block(values: Any, integer_so_far: bool = True) -> tuple[int, float, float, bool]:
    """Count, min, max and integrality of one block (integrality is only checked while every
    earlier block was integral: real-valued data pay for it once)."""
    t = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    t = t.detach()
    if t.numel() == 0:
        return 0, math.inf, -math.inf, True
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    low, high = torch.aminmax(t)
    if not t.is_floating_point():
        integer = True
    else:
        integer = integer_so_far and torch.equal(t, torch.trunc(t))
    return int(t.numel()), float(low), float(high), integer


def summarize_values(
    data: Any, *, source: str | None = None, block_rows: int | None = None
) -> ValueSummary:
    """One pass over ``data``: a dataset with ``read(slice)`` and ``len`` (``H5Dataset``,
    ``H5adDataset``, a subset or split of one), or an array / tensor.

    Datasets are read ``block_rows`` rows at a time (default: about 4 MB of values); the
    result is cached on the dataset object, so calling it again for the same dataset is free.
    """
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return _fold([_block(data)], source or f"an array of shape {list(data.shape)}")
    if not (hasattr(data, "read") and hasattr(data, "__len__")):
        raise TypeError(
            f"summarize_values needs a dataset with read() and len(), an array or a tensor, "
            f"got {type(data).__name__}"
        )
    name = source or getattr(data, "where", None) or repr(data)
    try:
        cached = _CACHE.get(data)
    except TypeError:  # not weak-referenceable: no cache
        cached = None
    if cached is not None and cached.source == name:
        return cached
    n = len(data)
    if block_rows is None:
        per_row = max(1, int(np.prod(getattr(getattr(data, "spec", None), "shape", (1,)))))
        block_rows = max(1, BLOCK_VALUES // per_row)
    parts: list[tuple[int, float, float, bool]] = []
    for a in range(0, n, block_rows):
        integer = all(p[3] for p in parts)
        parts.append(_block(data.read(slice(a, min(a + block_rows, n)))["x"], integer))
    summary = _fold(parts, name)
    try:
        _CACHE[data] = summary
    except TypeError:
        pass
    return summary


def fits(support: constraints.Constraint, values: ValueSummary) -> bool:
    """Whether every value summarised lies in ``support``.

    Checks the smallest and the largest value (enough for the one-dimensional supports
    likelihoods have: intervals, half-lines, the real line) and, for a discrete support, that
    all values are whole numbers.
    """
    ends = torch.tensor([values.min, values.max], dtype=torch.float64)
    if not bool(support.check(ends).all()):
        return False
    return values.integer or not support.is_discrete


def describe_support(support: constraints.Constraint) -> str:
    """A short human name for a support constraint: ``[0, 1]``, ``integers >= 0``, ...

    Read from the constraint's public bounds, so Pyro's and plugins' constraints work too.
    """
    low, high = getattr(support, "lower_bound", None), getattr(support, "upper_bound", None)
    discrete = "integers " if support.is_discrete else ""
    if low is not None and high is not None:
        close = ")" if "HalfOpen" in type(support).__name__ else "]"
        return f"{discrete}{'in ' if discrete else ''}[{_num(low)}, {_num(high)}{close}"
    if low is not None:
        strict = not support.is_discrete and not type(support).__name__.endswith("Eq")
        return f"{discrete or 'values '}{'>' if strict else '>='} {_num(low)}"
    if high is not None:
        return f"{discrete or 'values '}< {_num(high)}"
    if support is constraints.real:
        return "any real value"
    return type(support).__name__.lstrip("_")
