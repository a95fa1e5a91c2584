"""Block-shuffle batch plans: which rows go in which batch, for every epoch, rank and worker.

Reading rows one by one from HDF5 costs ~5-7 us per call, so a shuffled minibatch read item by
item runs at ~20k samples/s. The plan below keeps reads contiguous and still shuffles well:

1. Rows ``0..N-1`` are cut into contiguous **blocks** of ``block_size`` rows (the last may be
   shorter). With ``shuffle``, the block order is permuted from ``(seed, epoch)``; the same
   permutation on every rank. Concatenating the blocks gives the epoch's *global order*.
2. **Ranks** (DDP) take disjoint contiguous pieces of the global order, all of the same length
   ``per_rank``: without ``drop_last``, ``per_rank = ceil(N / world_size)`` and the last pieces
   are padded by wrapping around to the start of the global order (a few rows appear twice in
   the epoch, on different ranks, as in ``torch.utils.data.DistributedSampler``); with
   ``drop_last``, ``per_rank = floor(N / world_size)`` rounded down to whole batches and the rest
   of the global order is left out this epoch. Every rank therefore runs the same number of
   batches (no DDP hang on a rank that ran out).
3. Each rank's piece is cut into **fetches** of ``fetch_factor`` batches. A fetch is read with
   one slice read per contiguous run of rows (about one per block), then its rows are shuffled
   again from ``(seed, epoch, rank, fetch)`` and cut into batches.

The plan is a pure function of ``(N, batch_size, block_size, fetch_factor, seed, epoch, rank,
world_size, shuffle, drop_last)``: the same on every machine, independent of worker count and of
where iteration starts, so an epoch can be resumed at any batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import DataError

__all__ = ["BlockShuffleSampler", "Fetch", "contiguous_runs", "distributed_defaults"]


def distributed_defaults(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``(rank, world_size)``, filled in from ``torch.distributed`` when it is initialised."""
    if rank is None or world_size is None:
        try:
            import torch.distributed as dist

            ready = dist.is_available() and dist.is_initialized()
        except Exception:  # pragma: no cover - torch without distributed support
            ready = False
        if rank is None:
            rank = dist.get_rank() if ready else 0
        if world_size is None:
            world_size = dist.get_world_size() if ready else 1
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataError(
            f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}"
        )
    return int(rank), int(world_size)


def contiguous_runs(sorted_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and stops (exclusive) of the runs of consecutive values in a sorted unique array."""
    if sorted_rows.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [sorted_rows.size]))
    return sorted_rows[starts].astype(np.int64), sorted_rows[stops - 1].astype(np.int64) + 1


@dataclass(frozen=True)
class Fetch:
    """A group of consecutive batches read together.

    ``rows`` are the row ids (0-based within the dataset) in batch order; batch ``k`` of the
    fetch is ``rows[bounds[k]:bounds[k + 1]]`` and is batch ``first_batch + k`` of the epoch.
    """

    index: int
    first_batch: int
    rows: np.ndarray
    bounds: np.ndarray

    @property
    def num_batches(self) -> int:
        return len(self.bounds) - 1


class BlockShuffleSampler:
    """Batches of row ids, shuffled by blocks then within fetches (see the module docstring).

    Iterating yields one ``np.ndarray`` of row ids per batch (so it also works as a
    ``batch_sampler`` for ``torch.utils.data.DataLoader``); :meth:`fetches` yields the grouped
    plan that :class:`~genlatent.data.loader.BlockLoader` reads from.
    """

    def __init__(
        self,
        num_rows: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        block_size: int = 128,
        fetch_factor: int = 16,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ) -> None:
        for name, value in (
            ("batch_size", batch_size),
            ("block_size", block_size),
            ("fetch_factor", fetch_factor),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise DataError(f"{name} must be a positive integer, got {value!r}")
        if num_rows < 1:
            raise DataError("cannot sample from an empty dataset")
        self.num_rows = int(num_rows)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.block_size = int(block_size)
        self.fetch_factor = int(fetch_factor)
        self.rank, self.world_size = distributed_defaults(rank, world_size)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        if self.drop_last:
            self.num_batches = (self.num_rows // self.world_size) // self.batch_size
            if self.num_batches == 0:
                raise DataError(
                    f"drop_last with batch_size {self.batch_size} and {self.world_size} rank(s) "
                    f"leaves no batch of a {self.num_rows}-row dataset"
                )
            self.per_rank = self.num_batches * self.batch_size
        else:
            self.per_rank = math.ceil(self.num_rows / self.world_size)
            self.num_batches = math.ceil(self.per_rank / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order :meth:`__iter__` produces."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return self.num_batches

    # ------------------------------------------------------------------ the global order

    def _block_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block starts and lengths in this epoch's order, and their cumulative offsets."""
        starts = np.arange(0, self.num_rows, self.block_size, dtype=np.int64)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch, 0])
            starts = starts[rng.permutation(starts.size)]
        lengths = np.minimum(self.block_size, self.num_rows - starts)
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        return starts, lengths, offsets

    @staticmethod
    def _positions_to_rows(
        positions: np.ndarray, starts: np.ndarray, offsets: np.ndarray, num_rows: int
    ) -> np.ndarray:
        positions = positions % num_rows  # padding wraps to the start of the global order
        block = np.searchsorted(offsets, positions, side="right") - 1
        return starts[block] + (positions - offsets[block])

    # ------------------------------------------------------------------ plans

    def fetches(self, epoch: int | None = None, start_batch: int = 0) -> Iterator[Fetch]:
        """The epoch's fetches from batch ``start_batch`` on (the first one possibly partial).

        Each fetch's rows are computed only when it is reached, so skipping fetches (other
        workers' or already-done ones) is cheap.
        """
        epoch = self.epoch if epoch is None else int(epoch)
        if not 0 <= start_batch <= self.num_batches:
            raise DataError(f"start batch must be in [0, {self.num_batches}], got {start_batch}")
        starts, _, offsets = self._block_order(epoch)
        base = self.rank * self.per_rank
        fetch_rows = self.batch_size * self.fetch_factor
        first_fetch = start_batch // self.fetch_factor
        num_fetches = math.ceil(self.num_batches / self.fetch_factor)
        for j in range(first_fetch, num_fetches):
            lo = j * fetch_rows
            hi = min(lo + fetch_rows, self.per_rank)
            rows = self._positions_to_rows(
                np.arange(base + lo, base + hi, dtype=np.int64), starts, offsets, self.num_rows
            )
            if self.shuffle:
                rng = np.random.default_rng([self.seed, epoch, 1, self.rank, j])
                rows = rows[rng.permutation(rows.size)]
            bounds = np.arange(0, rows.size + self.batch_size, self.batch_size)
            bounds[-1] = min(bounds[-1], rows.size)
            if bounds.size >= 2 and bounds[-1] == bounds[-2]:
                bounds = bounds[:-1]
            first = j * self.fetch_factor
            skip = max(0, start_batch - first)
            if skip >= len(bounds) - 1:
                continue  # resuming at the very end of the epoch
            if skip:
                rows = rows[bounds[skip] :]
                bounds = bounds[skip:] - bounds[skip]
            yield Fetch(index=j, first_batch=first + skip, rows=rows, bounds=bounds)

    def batches(self, epoch: int | None = None, start_batch: int = 0) -> Iterator[np.ndarray]:
        """Row ids of each batch of the epoch, from ``start_batch`` on."""
        for fetch in self.fetches(epoch, start_batch):
            for k in range(fetch.num_batches):
                yield fetch.rows[fetch.bounds[k] : fetch.bounds[k + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.batches(self.epoch)
