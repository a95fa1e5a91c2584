"""Training callbacks: hooks the trainer calls at the start and end of a fit and of each epoch.

Built-ins are registered in ``registry.callbacks`` so that a plugin (or the CLI) can name them,
``Trainer(callbacks=["print_metrics", MyCallback()])``; a plugin adds its own with
``@registry.callbacks.register("my_callback")``. This module is imported by the registry on the
first lookup, so it imports nothing heavy.

A callback that keeps state across epochs (early stopping) returns it from ``state_dict`` as
plain numbers and strings: it goes into the checkpoint and comes back on ``resume``.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import registry

if TYPE_CHECKING:
    from .trainer import Trainer


class Callback:
    """Base class: override the hooks you need; every hook runs on rank 0 and on other ranks.

    ``trainer.is_main`` says whether this process may write files. Set
    ``trainer.should_stop = True`` to end the fit after the current epoch.
    ``on_step_end`` is only called when a subclass overrides it (it costs time per step).
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (also when resuming)."""

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        """After each optimiser step; ``step`` is the global step count (1-based)."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After each epoch with its metrics record (the line written to metrics.jsonl)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch, early stop included (not after an error)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-like state to checkpoint (numbers, strings, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


@registry.callbacks.register("early_stopping")
class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``monitor`` is a key of the epoch record; the default ``"val_loss"`` falls back to
    ``"train_loss"`` when there is no validation data.
    """

    def __init__(self, patience: int = 10, monitor: str = "val_loss", min_delta: float = 0.0):
        if int(patience) < 1:
            raise ValueError(f"early stopping patience must be >= 1, got {patience!r}")
        self.patience = int(patience)
        self.monitor = monitor
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0
        self.stopped_epoch: int | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if not trainer.history:  # a fresh fit (a resumed one has loaded its state already)
            self.best, self.best_epoch, self.bad_epochs, self.stopped_epoch = math.inf, -1, 0, None

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        key = self.monitor
        if key not in metrics and key.startswith("val_"):
            key = "train_" + key[len("val_") :]
        value = metrics.get(key)
        if value is None:
            return
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = float(value), metrics["epoch"], 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.stopped_epoch = metrics["epoch"]
            trainer.should_stop = True
            trainer.stop_reason = (
                f"early stopping: {key} did not improve for {self.patience} epochs "
                f"(best {self.best:.4f} at epoch {self.best_epoch})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_epoch": self.stopped_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state.get("best", math.inf))
        self.best_epoch = int(state.get("best_epoch", -1))
        self.bad_epochs = int(state.get("bad_epochs", 0))
        self.stopped_epoch = state.get("stopped_epoch")


@registry.callbacks.register("print_metrics")
class PrintMetrics(Callback):
    """One line per epoch on stderr (rank 0): epoch, losses, learning rate, speed."""

    def __init__(self, stream: Any = None):
        self.stream = stream

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if not trainer.is_main:
            return
        parts = [f"epoch {metrics['epoch']}", f"step {metrics['step']}"]
        for key, value in metrics.items():
            if key.startswith(("train_", "val_")) and isinstance(value, float):
                parts.append(f"{key} {value:.4f}")
        parts.append(f"lr {metrics.get('lr', float('nan')):.3g}")
        parts.append(f"{metrics.get('samples_per_s', 0.0):.0f} samples/s")
        print("  ".join(parts), file=self.stream or sys.stderr, flush=True)


@registry.callbacks.register("csv_logger")
class CSVLogger(Callback):
    """The epoch records as CSV (rank 0), default ``<out_dir>/metrics.csv``, rewritten atomically.

    Columns are the union of the keys seen so far, so a column that appears later (validation
    metrics from epoch 1 on) is filled with blanks before.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else None
        self.rows: list[dict[str, Any]] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.path is None:
            self.path = trainer.out_dir / "metrics.csv"
        self.rows = [dict(r) for r in trainer.history]

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.rows.append(dict(metrics))
        if not trainer.is_main or self.path is None:
            return
        from ..atomic import atomic_open

        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        with atomic_open(self.path, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)


def make_callback(item: Any) -> Callback:
    """A callback from a registered name, ``{"name": ..., "params": {...}}`` or an instance."""
    from ..errors import TrainingError

    if isinstance(item, Callback):
        return item
    if isinstance(item, str):
        name, params = item, {}
    elif isinstance(item, dict) and isinstance(item.get("name"), str):
        name, params = item["name"], dict(item.get("params") or {})
    else:
        raise TrainingError(
            f"callbacks: expected a registered name, {{'name': ..., 'params': ...}} or a "
            f"Callback instance, got {item!r}"
        )
    cls = registry.callbacks.get(name)
    try:
        obj = cls(**params)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"callback {name!r}: bad parameters {params}: {exc}") from None
    if not isinstance(obj, Callback):
        raise TrainingError(f"callback {name!r} is not a genlatent Callback subclass")
    return obj
