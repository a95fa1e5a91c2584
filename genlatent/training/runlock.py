"""A lock on a run folder, so two trainings never write into the same one.

The lock is a ``filelock.FileLock`` on ``<run>/.lock`` (``flock`` on POSIX, ``msvcrt`` on
Windows), held while the fit runs. The operating system drops it when the process ends,
however it ends (SIGKILL included), so a lock left by a dead process is simply taken over.
The owner (pid and host) is written beside it, in ``.lock.owner``, for the error message: a
Windows lock forbids writing into the locked file itself from another handle.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import TrainingError

LOCK_FILE = ".lock"
OWNER_FILE = ".lock.owner"


class RunLock:
    """Exclusive lock on a run folder; use as a context manager or ``acquire``/``release``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.owner_path = self.folder / OWNER_FILE
        self._lock = FileLock(self.path, timeout=0)

    def acquire(self) -> RunLock:
        if self.folder.exists() and not self.folder.is_dir():
            raise TrainingError(f"run folder {self.folder} exists and is not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"run folder {self.folder}: cannot create it ({exc.strerror})"
                                ) from None
        try:
            self._lock.acquire()
        except Timeout:
            try:
                owner = self.owner_path.read_text(encoding="utf-8", errors="replace").strip()
            except OSError:
                owner = ""
            raise TrainingError(
                f"run folder {self.folder} is in use by another training "
                f"({owner or 'unknown process'}); wait for it to finish or choose another "
                "output folder"
            ) from None
        self.owner_path.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n",
                                   encoding="utf-8")
        return self

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        try:
            with contextlib.suppress(OSError):
                self.owner_path.unlink()
        finally:
            self._lock.release()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
