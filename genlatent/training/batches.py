"""From data to a loss: loaders, batches on the device, autocast, and the loss function the
loop calls (the model's own ``loss``, or a DDP / compiled wrapper of it).

Training and validation both go through :class:`LossStep`, so moving a batch, autocast and
the loss call are written once.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import TrainingError
from . import distributed as ddp
from .config import TrainerConfig


class _LossModule(nn.Module):
    """``forward`` = ``model.loss``, so DDP and ``torch.compile`` see the loss as a forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Tensor], step: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.model.loss(batch, step)


def as_batch(batch: Any) -> dict[str, Any]:
    """Loaders may yield dicts (genlatent's), bare tensors or ``(x, ...)`` tuples."""
    if type(batch) is dict:
        return batch
    if isinstance(batch, Tensor):
        return {"x": batch}
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return {"x": batch[0]}
    if isinstance(batch, dict):
        return dict(batch)
    raise TrainingError(f"a batch must be a dict with 'x', a tensor or a tuple, got {type(batch)}")


def make_loader(data: Any, options: TrainerConfig, dist: ddp.DistInfo, train: bool) -> Any:
    """Loaders pass through; a dataset (``H5Dataset``) gets the data layer's loader."""
    if hasattr(data, "read_batches") and hasattr(data, "spec"):
        from ..data import make_loader as data_loader

        return data_loader(
            data,
            batch_size=options.batch_size,
            shuffle=options.shuffle and train,
            seed=options.seed,
            rank=dist.rank,
            world_size=dist.world_size,
            drop_last=False,
            num_workers=options.num_workers,
        )
    if not isinstance(data, Iterable):
        raise TrainingError(
            f"{'train' if train else 'val'} data must be a loader or an H5Dataset, "
            f"got {type(data).__name__}"
        )
    return data


def epoch_batches(loader: Any, epoch: int, start_batch: int) -> Iterator[Any]:
    """The epoch's batches from ``start_batch`` on; skipping is done eagerly so that any
    RNG a loader draws from is consumed before the RNG state is restored."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    if start_batch and callable(getattr(loader, "iter_from", None)):
        return iter(loader.iter_from(epoch, start_batch))  # the data layer's BlockLoader
    it = iter(loader)
    for _ in range(start_batch):
        next(it)
    return it


def training_loss(model: nn.Module, options: TrainerConfig, dist: ddp.DistInfo,
                  device: torch.device) -> Callable[..., Any]:
    """``model.loss`` itself (the leanest path), or wrapped in DDP and/or ``torch.compile``."""
    if not dist.enabled and not options.compile:
        return model.loss
    module: nn.Module = _LossModule(model)
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        module = DistributedDataParallel(module, device_ids=ids)
    if options.compile:
        try:
            module = torch.compile(module)
        except Exception as exc:  # noqa: BLE001 - compile is an optional speed-up
            warnings.warn(f"torch.compile failed, training uncompiled: {exc}", stacklevel=4)
    return module


class LossStep:
    """``step(raw_batch, loss_fn, step) -> (n, loss, metrics)``: the batch moved to the device
    and run through ``loss_fn`` under autocast at the configured precision."""

    def __init__(self, device: torch.device, autocast_dtype: torch.dtype | None) -> None:
        self.device = device
        self.move = device.type != "cpu"
        if autocast_dtype is None:
            self.autocast: Callable[[], Any] = contextlib.nullcontext
        else:
            self.autocast = lambda: torch.autocast(device.type, dtype=autocast_dtype)

    def __call__(self, raw: Any, loss_fn: Callable[..., Any], step: int
                 ) -> tuple[int, Tensor, dict[str, Tensor]]:
        batch = as_batch(raw)
        if self.move:
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()
                     if isinstance(v, Tensor)}
        with self.autocast():
            loss, metrics = loss_fn(batch, step)
        return batch["x"].shape[0], loss, metrics
