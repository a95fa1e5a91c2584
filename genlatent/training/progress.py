"""Progress on stderr (rank 0): batches done, samples/s, running loss, and elapsed time and
ETA for the epoch and for the run.

On a terminal the line is redrawn in place at most every ``interval`` seconds. Elsewhere (a
pipe, a log file, a batch job) a full line is written at most every ``log_interval`` seconds
(30) within an epoch, plus one at each epoch's end, so a long epoch is never silent in a log
and a short one costs one line. (tqdm was considered: its output off a terminal is
carriage-return redraws, not log lines, and it would not know the run's ETA.) The trainer
only reads the loss (a device sync) when :meth:`Progress.due` says a line is due, so progress
costs one clock read per step.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from .config import format_duration


class Progress:
    """Progress display for one process (the trainer only makes one on rank 0)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.5,
                 log_interval: float = 30.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.live else log_interval
        self.clock = clock
        self._next = 0.0
        self._width = 0
        # the run: where this fit started, how far it goes, and its time limit
        self.run_start = self.run_prior = 0.0
        self.first_step, self.total_steps, self.run_deadline = 0, None, None
        # the epoch in progress
        self.epoch, self.epochs, self.total_batches, self.first_batch = 0, None, None, 0
        self.epoch_start = 0.0

    @classmethod
    def for_run(cls, options: Any, step: int, batches_per_epoch: int | None,
                prior_seconds: float) -> Progress:
        """Progress on stderr for a fit with these Trainer ``options``, starting at ``step``."""
        by_epochs = (options.epochs or 0) * (batches_per_epoch or 0)
        total = min(filter(None, (options.max_steps, by_epochs)), default=None)
        budget = options.max_time_seconds
        progress = cls()
        progress.start_run(step, total, prior_seconds,
                           None if budget is None else budget - prior_seconds)
        return progress

    def start_run(self, step: int, total_steps: int | None, prior_seconds: float = 0.0,
                  budget_left: float | None = None) -> None:
        """A fit starts at ``step`` of ``total_steps``, ``prior_seconds`` into the run, with
        ``budget_left`` seconds of its time budget (``max_time``) left."""
        self.run_start, self.run_prior = self.clock(), prior_seconds
        self.first_step, self.total_steps = step, total_steps
        self.run_deadline = None if budget_left is None else self.run_start + budget_left

    def start_epoch(self, epoch: int, epochs: int | None, total_batches: int | None,
                    first_batch: int = 0) -> None:
        """Epoch ``epoch`` (1-based) of ``epochs`` starts (or resumes at ``first_batch``)."""
        self.epoch, self.epochs, self.total_batches = epoch, epochs, total_batches
        self.first_batch, self.epoch_start = first_batch, self.clock()
        self._next = self.epoch_start + (0.0 if self.live else self.interval)

    def due(self) -> bool:
        """True when a line is due (cheap: one clock read)."""
        return self.clock() >= self._next

    def _times(self, now: float, done: int, step: int) -> str:
        """``epoch 0:12<0:35  run 2:10<7:40``: elapsed<ETA (ETA shown once it is known)."""
        spent = now - self.epoch_start
        text = f"epoch {format_duration(spent)}"
        if self.total_batches and done > self.first_batch:
            left = spent / (done - self.first_batch) * max(0, self.total_batches - done)
            text += f"<{format_duration(left)}"
        run_spent = now - self.run_start
        text += f"  run {format_duration(self.run_prior + run_spent)}"
        left_run = None
        if self.total_steps and step > self.first_step:
            left_run = run_spent / (step - self.first_step) * max(0, self.total_steps - step)
        if self.run_deadline is not None:
            budget = max(0.0, self.run_deadline - now)
            left_run = budget if left_run is None else min(left_run, budget)
        if left_run is not None:
            text += f"<{format_duration(left_run)}"
        return text

    def _line(self, done: int, step: int, rate: float, loss: float) -> str:
        of_epochs = f"/{self.epochs}" if self.epochs else ""
        if self.total_batches:
            frac = min(1.0, done / self.total_batches)
            where = f"[{'#' * int(frac * 20):<20}] {done}/{self.total_batches}"
        else:
            where = f"{done} batches"
        return (f"epoch {self.epoch}{of_epochs} {where}  {rate:,.0f} samples/s  loss {loss:.4f}"
                f"  {self._times(self.clock(), done, step)}")

    def update(self, done: int, step: int, rate: float, loss: float) -> None:
        """Draw the line: in place on a terminal, as a new line elsewhere."""
        self._next = self.clock() + self.interval
        line = self._line(done, step, rate, loss)
        if self.live:
            pad = " " * max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write("\r" + line + pad)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self, done: int, step: int, rate: float, loss: float, extra: str = "") -> None:
        """Write the epoch's final line and end it."""
        line = self._line(done, step, rate, loss) + extra
        prefix = "\r" if self.live else ""
        pad = " " * max(0, self._width - len(line)) if self.live else ""
        self.stream.write(prefix + line + pad + "\n")
        self.stream.flush()
        self._width = 0


def say(message: str, stream: TextIO | None = None) -> None:
    """One line of news about the run on stderr (resuming, KL method, ...)."""
    stream = stream or sys.stderr
    stream.write(message + "\n")
    stream.flush()


def kl_method_of(model: Any) -> str | None:
    """How the model computes its KL term, if it says (``analytic`` / ``monte_carlo``)."""
    for owner in (model, getattr(model, "objective_config", None)):
        value = getattr(owner, "kl_method", None)
        if isinstance(value, str):
            return value
    return None


def _family(d: Any) -> str:
    """``Normal`` for ``Independent(Normal)``; a mixture by its components' family; a flow
    (a transformed distribution) as ``flow of`` its base's family."""
    from torch.distributions import TransformedDistribution

    if isinstance(d, TransformedDistribution) and d.transforms:
        return f"flow of {_family(d.base_dist)}"
    while hasattr(d, "base_dist"):
        d = d.base_dist
    components = getattr(d, "component_distribution", None)
    if components is not None:
        return f"mixture of {_family(components)}"
    return type(d).__name__


def _kl_pair(model: Any) -> str | None:
    """``"Normal || Normal"``: the posterior and prior families, when the model has both."""
    import torch

    try:
        with torch.no_grad():
            q, p = model.reference_distributions()
        return f"{_family(q)} || {_family(p)}"
    except (AttributeError, TypeError, StopIteration, RuntimeError, ValueError):
        return None


def kl_line(model: Any) -> str | None:
    """The line a fit starts with when the model has a KL term: how it is computed."""
    method = kl_method_of(model)
    if method is None:
        return None
    pair = _kl_pair(model)
    if method == "analytic":
        return f"KL: analytic (closed form {pair})" if pair else "KL: analytic (closed form)"
    samples = int(getattr(model, "kl_samples", 1))
    per_step = f"{samples} sample{'s' if samples != 1 else ''} per step"
    return f"KL: Monte Carlo, {per_step} (no closed form for {pair or 'this pair'})"
