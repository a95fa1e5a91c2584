"""A plain-text progress line per epoch on stderr: batches done, samples/s, running loss.

Redrawn in place at most every ``interval`` seconds on a terminal; on a pipe or a log file
only the final line of each epoch is written. The trainer only reads the loss (a device sync)
when :meth:`Progress.due` says a redraw is due, so the bar costs nothing per step.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Progress display for one process (the trainer only makes one on rank 0)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._next = 0.0
        self._width = 0

    def due(self) -> bool:
        """True when a redraw is due (cheap: one clock read)."""
        return self.live and time.monotonic() >= self._next

    def _line(self, epoch: int, epochs: int | None, done: int, total: int | None,
              rate: float, loss: float) -> str:
        of_epochs = f"/{epochs}" if epochs else ""
        if total:
            frac = min(1.0, done / total)
            bar = "#" * int(frac * 20)
            where = f"[{bar:<20}] {done}/{total}"
        else:
            where = f"{done} batches"
        return f"epoch {epoch}{of_epochs} {where}  {rate:,.0f} samples/s  loss {loss:.4f}"

    def update(self, epoch: int, epochs: int | None, done: int, total: int | None,
               rate: float, loss: float) -> None:
        """Redraw the line in place (terminal only)."""
        self._next = time.monotonic() + self.interval
        line = self._line(epoch, epochs, done, total, rate, loss)
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + pad)
        self.stream.flush()

    def close(self, epoch: int, epochs: int | None, done: int, total: int | None,
              rate: float, loss: float, extra: str = "") -> None:
        """Write the epoch's final line and end it."""
        line = self._line(epoch, epochs, done, total, rate, loss) + extra
        prefix = "\r" if self.live else ""
        pad = " " * max(0, self._width - len(line)) if self.live else ""
        self.stream.write(prefix + line + pad + "\n")
        self.stream.flush()
        self._width = 0
        self._next = 0.0


def say(message: str, stream: TextIO | None = None) -> None:
    """One line of news about the run on stderr (resuming, KL method, ...)."""
    stream = stream or sys.stderr
    stream.write(message + "\n")
    stream.flush()
