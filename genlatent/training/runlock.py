"""A lock on a run folder, so two trainings never write into the same one.

The lock is an ``fcntl.flock`` on ``<run>/.lock``, held while the fit runs. The kernel drops it
when the process ends, however it ends (SIGKILL included), so a lock left by a dead process is
simply taken over; the file also holds the owner's pid and host for the error message.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from ..errors import TrainingError

LOCK_FILE = ".lock"


class RunLock:
    """Exclusive lock on a run folder; use as a context manager or ``acquire``/``release``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if self.folder.exists() and not self.folder.is_dir():
            raise TrainingError(f"run folder {self.folder} exists and is not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"run folder {self.folder}: cannot create it ({exc.strerror})"
                                ) from None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            raise TrainingError(
                f"run folder {self.folder} is in use by another training ({owner}); "
                "wait for it to finish or choose another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
