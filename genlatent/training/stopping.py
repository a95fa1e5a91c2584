"""Stopping at a safe point: on SIGINT / SIGTERM, or when the time budget is spent.

During a fit, :class:`StopRequests` replaces the SIGINT and SIGTERM handlers by one that only
sets a flag; the loop looks at it after each step (cheap: an attribute read and, with a
budget, one clock read) and stops there, checkpoints and reports. A second signal raises
``KeyboardInterrupt`` at once (checkpoint writes are atomic, so the last good one survives).
The previous handlers come back when the fit ends.

Under DDP (``torchrun``) the handlers are not installed: torchrun owns its workers' signals
(on a lost node it SIGTERMs the survivors to restart the group, which must not wait for a step
that a dead peer blocks). The time budget still applies there, and every rank must stop at the
same step: the ranks agree (one all-reduce) only every ``check_every`` steps.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from ..errors import TrainingInterrupted
from . import distributed as ddp
from .checkpoint import latest_checkpoint

INTERRUPTED, MAX_TIME = "interrupted", "max_time"
# the clock of the time budget and of the run's elapsed time (tests put a fake one here)
CLOCK: Callable[[], float] = time.monotonic
_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None))
                 if s is not None)


class StopRequests:
    """Why the loop should stop at its next safe point: a signal, or the time budget."""

    def __init__(self, budget: float | None = None, spent: float = 0.0,
                 dist: ddp.DistInfo | None = None, every: int = 1,
                 device: torch.device | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        """``budget``: seconds the run may train in all (``max_time``), of which ``spent``
        were used by earlier fits of the run; ``every``: steps between DDP agreements;
        ``device``: where the agreement's all-reduce runs (the training device)."""
        self.clock = clock or CLOCK
        self.deadline: float | None = None
        self.set_budget(budget, spent)
        self.dist = dist or ddp.DistInfo()
        self.every = max(1, every)
        self.device = device or torch.device("cpu")
        self.signal: int | None = None  # the first signal received
        self.reason: str | None = None  # INTERRUPTED or MAX_TIME once the loop has agreed
        self._previous: dict[int, Any] = {}

    # ------------------------------------------------------------------ signals

    def set_budget(self, budget: float | None, spent: float) -> None:
        """Start the clock: ``budget`` seconds for the run, ``spent`` of them used before."""
        self.deadline = None if budget is None else self.clock() + budget - spent

    def install(self) -> None:
        """Catch SIGINT / SIGTERM (from the main thread only: Python allows no other)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore(self) -> None:
        """Put the handlers found by :meth:`install` back."""
        while self._previous:
            sig, handler = self._previous.popitem()
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # the second one: stop now
            self.restore()
            raise KeyboardInterrupt
        self.signal = signum

    # ------------------------------------------------------------------ checks

    def _local(self) -> str | None:
        if self.signal is not None:
            return INTERRUPTED
        if self.deadline is not None and self.clock() >= self.deadline:
            return MAX_TIME
        return None

    def after_step(self, step: int) -> bool:
        """True when the loop should stop after ``step`` (every rank agrees under DDP)."""
        if self.reason is not None:
            return True
        if not self.dist.enabled:
            self.reason = self._local()
            return self.reason is not None
        return step % self.every == 0 and self.agreed()

    def agreed(self) -> bool:
        """Check now on every rank (a collective under DDP: all ranks must call it)."""
        if self.reason is not None:
            return True
        local = self._local()
        if self.dist.enabled:
            flags = torch.tensor([float(local == INTERRUPTED), float(local == MAX_TIME)],
                                 dtype=torch.float64, device=self.device)
            ddp.all_reduce_sum(flags, self.dist)
            local = INTERRUPTED if flags[0] > 0 else MAX_TIME if flags[1] > 0 else None
        self.reason = local
        return local is not None


def interrupted_error(trainer: Any, stop: StopRequests) -> TrainingInterrupted:
    """The error a fit stopped by a signal ends with: where it stopped, what was kept."""
    epoch = trainer.epoch + (0 if trainer.epoch_complete else 1)
    step = trainer.step
    found = latest_checkpoint(trainer.out_dir) if trainer.is_main else None
    name = signal.Signals(stop.signal).name if stop.signal else "a signal"
    where = f"at epoch {epoch}, step {step}" if step else "before the first step"
    kept = f"kept {found[0]}" if found else "nothing was trained"
    return TrainingInterrupted(
        f"training interrupted ({name}) {where}; {kept}", out_dir=str(trainer.out_dir),
        checkpoint=str(found[0]) if found else None, epoch=epoch, step=step)


def budget_note(trainer: Any) -> str:
    """The line a fit stopped by ``max_time`` ends with."""
    where = f"epoch {trainer.epoch + (0 if trainer.epoch_complete else 1)}, step {trainer.step}"
    return (f"time budget max_time={trainer.options.max_time} spent at {where}: checkpoint "
            f"and model saved in {trainer.out_dir}; resume with a larger max_time to go on")
