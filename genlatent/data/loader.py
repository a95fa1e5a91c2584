"""The training loader: block-shuffled batches from any reader, resumable mid-epoch.

Use::

    loader = make_loader(dataset, batch_size=128, seed=0)      # rank/world_size from DDP
    for epoch in range(start_epoch, epochs):
        loader.set_epoch(epoch)
        for batch in loader:                                    # dicts, see RowDataset
            ...
            checkpoint["loader"] = loader.state_dict()          # {"epoch", "batch", ...}

    # resuming: restore the state, then run the same loop; the first iteration of the saved
    # epoch starts at the saved batch, later epochs start at 0.
    loader.load_state_dict(checkpoint["loader"])

The batch order depends only on ``(seed, epoch, rank, world_size)`` and the sizes (see
:mod:`genlatent.data.sampler`), never on ``num_workers`` or on where iteration started.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ..errors import DataError
from .rows import RowDataset
from .sampler import BlockShuffleSampler

__all__ = ["BlockLoader", "make_loader"]


class _FetchStream(torch.utils.data.IterableDataset):
    """What DataLoader workers run: worker w reads fetches w, w + W, ... of the plan.

    Each item is a whole fetch (a list of batches); the DataLoader hands items out round-robin
    over workers, so the main process sees the fetches, hence the batches, in plan order.
    """

    def __init__(self, dataset: RowDataset, sampler: BlockShuffleSampler, epoch: int, start: int):
        self.dataset = dataset
        self.sampler = sampler
        self.epoch = epoch
        self.start = start

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for i, fetch in enumerate(self.sampler.fetches(self.epoch, self.start)):
            if i % workers == worker:
                yield self.dataset.read_batches(fetch.rows, fetch.bounds)


class BlockLoader:
    """Iterable of batch dicts with ``set_epoch``, ``len`` and exact mid-epoch resume.

    Made by :func:`make_loader`. ``len(loader)`` is the number of batches per epoch on this
    rank (equal on every rank). Iterating runs the current epoch (:meth:`set_epoch`); the
    loader counts the batches it has handed out, so :meth:`state_dict` taken after batch ``k``
    of epoch ``e`` resumes at batch ``k + 1``.
    """

    def __init__(
        self,
        dataset: RowDataset,
        sampler: BlockShuffleSampler,
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
        multiprocessing_context: Any = None,
    ) -> None:
        if num_workers < 0:
            raise DataError(f"num_workers must be >= 0, got {num_workers}")
        self.dataset = dataset
        self.sampler = sampler
        self.num_workers = 0 if dataset.in_memory else int(num_workers)
        self.pin_memory = pin_memory
        self.multiprocessing_context = multiprocessing_context
        self.epoch = 0
        self._position = 0  # batches of self.epoch handed out so far
        self._resume: tuple[int, int] | None = None

    @property
    def batch_size(self) -> int:
        return self.sampler.batch_size

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch that the next iteration runs (a pending resume is kept)."""
        self.epoch = int(epoch)
        self.sampler.set_epoch(self.epoch)
        self._position = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            start = self._resume[1]
        self._resume = None
        return self.iter_from(self.epoch, start)

    def iter_from(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, Any]]:
        """Batches ``start_batch, start_batch + 1, ...`` of ``epoch``, exactly as a full pass
        would produce them (also sets the current epoch)."""
        if self.epoch != int(epoch):
            self.set_epoch(epoch)
        if not 0 <= start_batch <= len(self):
            raise DataError(f"start batch must be in [0, {len(self)}], got {start_batch}")
        self._position = start_batch
        return self._generate(int(epoch), int(start_batch))

    def _generate(self, epoch: int, start: int) -> Iterator[dict[str, Any]]:
        for batches in self._fetches(epoch, start):
            for batch in batches:
                self._position += 1
                yield batch

    def _fetches(self, epoch: int, start: int) -> Iterator[list[dict[str, Any]]]:
        if self.num_workers == 0:
            for fetch in self.sampler.fetches(epoch, start):
                yield self.dataset.read_batches(fetch.rows, fetch.bounds)
            return
        self.dataset.close()  # workers open their own handles; none is inherited
        loader = torch.utils.data.DataLoader(
            _FetchStream(self.dataset, self.sampler, epoch, start),
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            multiprocessing_context=self.multiprocessing_context,
        )
        yield from loader

    def state_dict(self) -> dict[str, int]:
        """Where iteration stands: the epoch and the next batch to hand out, plus the settings
        that must match on resume."""
        epoch, batch = self.epoch, self._position
        if batch >= len(self):
            epoch, batch = epoch + 1, 0
        s = self.sampler
        return {
            "epoch": epoch,
            "batch": batch,
            "seed": s.seed,
            "batch_size": s.batch_size,
            "num_rows": s.num_rows,
            "world_size": s.world_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: the next iteration of ``state["epoch"]`` starts at ``state["batch"]``."""
        s = self.sampler
        for name, mine in (
            ("seed", s.seed),
            ("batch_size", s.batch_size),
            ("num_rows", s.num_rows),
            ("world_size", s.world_size),
        ):
            if name in state and int(state[name]) != mine:
                raise DataError(
                    f"cannot resume the data order: saved {name}={state[name]}, this loader has "
                    f"{name}={mine}"
                )
        epoch, batch = int(state["epoch"]), int(state["batch"])
        self.set_epoch(epoch)
        self._resume = (epoch, batch)
        self._position = batch


def make_loader(
    dataset: RowDataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    num_workers: int = 0,
    drop_last: bool = False,
    block_size: int = 128,
    fetch_factor: int = 16,
    pin_memory: bool = False,
    multiprocessing_context: Any = None,
) -> BlockLoader:
    """A :class:`BlockLoader` over ``dataset`` (see :mod:`genlatent.data.sampler`).

    - ``block_size`` rows are read contiguously; ``fetch_factor`` batches are read together
      and shuffled among themselves.
    - ``rank``/``world_size`` default to ``torch.distributed``'s when it is initialised; each
      rank gets a disjoint shard and the same number of batches (``drop_last=False`` pads the
      last shards by repeating rows from the start of the epoch order; ``True`` drops the
      remainder, and every batch is then full).
    - ``num_workers > 0`` reads fetches in DataLoader worker processes (each opens its own
      file); with data in the page cache 0 workers is usually fastest. In-memory datasets
      always read in-process.
    """
    sampler = BlockShuffleSampler(
        len(dataset),
        batch_size,
        shuffle=shuffle,
        seed=seed,
        block_size=block_size,
        fetch_factor=fetch_factor,
        rank=rank,
        world_size=world_size,
        drop_last=drop_last,
    )
    return BlockLoader(
        dataset,
        sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        multiprocessing_context=multiprocessing_context,
    )
