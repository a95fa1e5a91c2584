"""The files a fit writes besides checkpoints and the model: ``trainer.json``,
``metrics.jsonl`` (rewritten atomically after every epoch) and TensorBoard scalars.

Only rank 0 writes; on other ranks every method does nothing.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ..atomic import write_json, write_text


class RunOutputs:
    """Writer of one run folder's metrics files (``active`` on rank 0 only)."""

    def __init__(self, out_dir: Path, active: bool, tensorboard: bool | str) -> None:
        self.out_dir, self.active, self.tensorboard = out_dir, active, tensorboard
        self.writer: Any = None

    def start(self, options: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Record the options, the history so far, and open TensorBoard (when wanted)."""
        if not self.active:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.out_dir / "trainer.json", options)
        self.write_history(history)
        self.writer = self._open_tensorboard()

    def _open_tensorboard(self) -> Any:
        if self.tensorboard is False:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if self.tensorboard is True:
                warnings.warn("tensorboard is not installed; no TensorBoard output", stacklevel=4)
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    def write_history(self, history: list[dict[str, Any]]) -> None:
        if self.active:
            text = "".join(json.dumps(r, sort_keys=False) + "\n" for r in history)
            write_text(self.out_dir / "metrics.jsonl", text)

    def epoch_end(self, record: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl and add the epoch's numbers to TensorBoard."""
        if not self.active:
            return
        self.write_history(history)
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, float) and key != "elapsed":
                    self.writer.add_scalar(key.replace("_", "/", 1), value, record["step"])
            self.writer.flush()

    def save_model(self, model: Any) -> None:
        """``model.save(out_dir/model)``; a bare module with a loss: its weights only."""
        if not self.active:
            return
        if getattr(model, "spec", None):
            model.save(self.out_dir / "model")
            return
        import torch

        from ..atomic import atomic_path

        (self.out_dir / "model").mkdir(parents=True, exist_ok=True)
        with atomic_path(self.out_dir / "model" / "weights.pt") as tmp:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
