"""User-facing error types.

Every error a user can cause (bad input, unknown name, broken plugin, corrupt file) is a
``GenlatentError`` whose message is one line naming the file, key or option and what was
expected. The CLI prints such errors without a traceback and exits with status 2.
"""

from __future__ import annotations


class GenlatentError(Exception):
    """Base class of every error caused by user input rather than by a bug."""


class RegistryError(GenlatentError, KeyError):
    """An unknown or duplicate component name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PluginError(GenlatentError):
    """A plugin failed to load or a part of a missing plugin was requested."""


class SpecError(GenlatentError, ValueError):
    """A model spec that cannot be built: missing field, bad value, incompatible parts."""


class DataError(GenlatentError, ValueError):
    """Input data that cannot be used: missing file or key, wrong shape, dtype, NaN, ..."""


class CheckpointError(GenlatentError):
    """A saved model or checkpoint that is missing, corrupt, tampered or not genlatent's."""


class TrainingError(GenlatentError):
    """Training could not go on: non-finite loss or gradient, run folder in use, ..."""


class TrainingInterrupted(TrainingError):
    """Training stopped at a safe point on request (Ctrl-C / SIGINT / SIGTERM).

    ``checkpoint`` is the checkpoint file kept (``None`` when nothing was trained yet),
    ``epoch`` and ``step`` where the run stopped, ``out_dir`` the run folder.
    """

    def __init__(self, message: str, *, out_dir: str | None = None,
                 checkpoint: str | None = None, epoch: int = 0, step: int = 0) -> None:
        super().__init__(message)
        self.out_dir, self.checkpoint, self.epoch, self.step = out_dir, checkpoint, epoch, step
