"""Choosing the reader for a path: every reader is a part in ``registry.datasets``.

Each registered reader class says whether it opens a path (``can_open``: suffix, file
signature, folder listing); :func:`open_dataset` asks them all and uses the one that claims
the path. Built in: ``h5`` (HDF5) and ``h5ad`` (AnnData); plugins add more. The contract a
reader meets is in :mod:`genlatent.parts`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .. import registry
from ..errors import DataError

__all__ = ["open_dataset", "reader_for"]

log = logging.getLogger(__name__)


def _claims(reader: Any, path: Path) -> bool:
    can_open = getattr(reader, "can_open", None)
    if can_open is None:
        return False
    try:
        return bool(can_open(path))
    except Exception:  # noqa: BLE001 - one reader's broken check must not hide the others
        log.debug("reader %r failed to check %s", reader, path, exc_info=True)
        return False


def reader_for(path: str | os.PathLike[str]) -> registry.Entry[Any]:
    """The registry entry of the one reader that opens ``path``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    entries = registry.datasets.entries()
    claims = [e for e in entries if _claims(e.obj, path)]
    if len(claims) == 1:
        return claims[0]
    if not claims:
        known = "; ".join(
            f"{getattr(e.obj, 'description', '') or e.name} ({e.name})" for e in entries
        )
        raise DataError(f"{path}: no reader opens it; readers: {known}")
    names = ", ".join(f"{e.name} ({e.provider})" for e in claims)
    raise DataError(f"{path}: several readers claim it: {names}; choose one with reader=NAME")


def open_dataset(
    path: str | os.PathLike[str], key: str | None = None, *, reader: str | None = None,
    **options: Any,
) -> Any:
    """The dataset at ``path``, read by the registered reader that claims it (or ``reader``).

    ``key`` defaults to the reader's (``x``; ``X`` for AnnData); ``options`` go to the
    reader (``labels``, ``in_memory``, ...).
    """
    cls = registry.datasets.get(reader) if reader else reader_for(path).obj
    return cls(path, key or cls.default_key, **options)
