"""Training: :class:`~genlatent.training.trainer.Trainer` (also ``genlatent.Trainer``), its
checkpoints, callbacks, run lock and DDP helpers.

Kept import-free: the registry imports :mod:`.callbacks` on its first lookup, which must not
pull in the trainer (torch.distributed, optimisers) with it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Trainer", "Callback"]


def __getattr__(name: str) -> Any:
    if name == "Trainer":
        from .trainer import Trainer

        return Trainer
    if name == "Callback":
        from .callbacks import Callback

        return Callback
    raise AttributeError(f"module 'genlatent.training' has no attribute {name!r}")
