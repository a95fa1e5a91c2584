"""Epoch metrics kept on the device, and the non-finite check of recent steps.

:class:`MetricSums` adds each step's metrics, weighted by the batch size, into one float64
vector on the device (one ``add_`` per step) and reads them back once, at the end (all-reduced
over the ranks); training and validation share it. :func:`first_non_finite` looks at a ring of
recent steps' metric rows at once, so catching a NaN costs no sync per step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import distributed as ddp
from .checkpoint import latest_checkpoint


class MetricSums:
    """Sample-weighted sums of named metrics (``keys``; ``loss`` first) on ``device``."""

    def __init__(self, device: torch.device, partial: dict[str, Any] | None = None) -> None:
        self.device = device
        self.keys: list[str] | None = list(partial["keys"]) if partial else None
        self.sums: Tensor | None = partial["sums"].to(device) if partial else None
        self.samples = int(partial["samples"]) if partial else 0
        self.prior_seconds = float(partial["seconds"]) if partial else 0.0

    def layout(self, metrics: dict[str, Tensor], grad_norm: bool = False) -> list[str]:
        """Fix the keys from the first step's metrics (kept when resumed) and allocate."""
        if self.keys is None:
            self.keys = ["loss", *[k for k in metrics if k != "loss"]]
            if grad_norm:
                self.keys.append("grad_norm")
            self.sums = torch.zeros(len(self.keys), dtype=torch.float64, device=self.device)
        return self.keys

    def row(self, loss: Tensor, metrics: dict[str, Tensor], grad_norm: Tensor | None = None
            ) -> Tensor:
        """One step's values in key order (what :meth:`add` takes), on the device; metrics a
        model makes on the host (constants such as ``kl_weight``) are moved."""
        assert self.keys is not None
        values = [loss.detach(), *[metrics[k] for k in self.keys[1:] if k != "grad_norm"]]
        if grad_norm is not None:
            values.append(grad_norm)
        return torch.stack([v.to(self.device) for v in values])

    def add(self, row: Tensor, n: int) -> None:
        self.sums.add_(row, alpha=n)  # type: ignore[union-attr]
        self.samples += n

    def running_mean(self, index: int = 0) -> float:
        """This rank's mean so far of one metric (a device sync: for progress lines only)."""
        return float(self.sums[index]) / max(1, self.samples) if self.sums is not None else 0.0

    def partial(self, seconds: float) -> dict[str, Any]:
        """This rank's sums as a checkpoint records them."""
        assert self.sums is not None
        return {"keys": self.keys, "sums": self.sums.detach().cpu().clone(),
                "samples": self.samples, "seconds": seconds}

    def means(self, dist: ddp.DistInfo) -> tuple[dict[str, float], int]:
        """The means over every rank's samples, and how many samples that is."""
        if self.sums is None or self.keys is None:
            return {}, 0
        sums = self.sums.clone()
        ddp.all_reduce_sum(sums, dist)
        count = torch.tensor([float(self.samples)], dtype=torch.float64, device=self.device)
        ddp.all_reduce_sum(count, dist)
        total = int(count.item())
        return dict(zip(self.keys, (sums / max(1, total)).tolist(), strict=True)), total


def first_non_finite(ring: Tensor, filled: int, step: int, keys: list[str],
                     dist: ddp.DistInfo) -> tuple[int, str] | None:
    """(step, "loss=nan, ...") of the first non-finite row among the last ``filled`` rows
    (ending at ``step``), agreed by every rank; ``None`` when all are finite."""
    if filled == 0:
        return None
    window = ring[:filled]
    bad_rows = ~torch.isfinite(window).all(dim=1)
    if dist.enabled:
        idx = torch.arange(filled, device=ring.device, dtype=torch.float64)
        first = torch.where(bad_rows, idx, torch.full_like(idx, math.inf)).min().reshape(1)
        ddp.all_reduce_min(first, dist)
        if math.isinf(first.item()):
            return None
        bad = int(first.item())
    else:
        if bool(torch.isfinite(window).all()):
            return None
        bad = int(bad_rows.nonzero()[0, 0])
    values = dict(zip(keys, window[bad].tolist(), strict=False))
    what = ", ".join(f"{k}={v}" for k, v in values.items() if not math.isfinite(v))
    return step - filled + bad + 1, what


def weights_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter is finite (one sync), checked before a checkpoint is written."""
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def divergence_message(out_dir: Path, is_main: bool, step: int, epoch: int, what: str,
                       precision: str) -> str:
    """One line: where training went non-finite, which checkpoint is kept, what to try."""
    if is_main:
        found = latest_checkpoint(out_dir)
        kept = (f"the last good checkpoint ({found[0]}) is kept" if found
                else "no checkpoint had been written")
    else:
        kept = f"rank 0 keeps the last good checkpoint in {out_dir}"
    hint = "try a lower lr or grad_clip" + (" or precision '32'" if precision != "32" else "")
    return f"training stopped at step {step} (epoch {epoch}): {what}; {kept}; {hint}"
