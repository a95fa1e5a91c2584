"""Data: HDF5 datasets, the block-shuffle loader, AnnData files, importers, vocabularies.

Imported lazily by the registry (``registry.datasets``: ``h5``, ``h5ad``); importing it only
defines classes and functions (torch, numpy; h5py is imported when a file is opened).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import registry
from .h5 import DEFAULT_MEMORY_LIMIT, H5Dataset, open_h5
from .h5ad import H5adDataset
from .importers import import_idx, import_numpy, import_smiles, read_idx, write_h5
from .loader import BlockLoader, make_loader
from .sampler import BlockShuffleSampler
from .spec import BOS_ID, EOS_ID, KINDS, PAD_ID, SPECIAL_TOKENS, UNK_ID, DataSpec
from .tokens import Vocabulary, tokenize_chars, tokenize_smiles

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "H5Dataset",
    "H5adDataset",
    "BlockLoader",
    "BlockShuffleSampler",
    "DataSpec",
    "KINDS",
    "SPECIAL_TOKENS",
    "PAD_ID",
    "BOS_ID",
    "EOS_ID",
    "UNK_ID",
    "Vocabulary",
    "tokenize_smiles",
    "tokenize_chars",
    "make_loader",
    "open_dataset",
    "open_h5",
    "import_numpy",
    "import_smiles",
    "import_idx",
    "read_idx",
    "write_h5",
]


def open_dataset(path: str | os.PathLike[str], key: str | None = None, **options: Any) -> H5Dataset:
    """An :class:`H5adDataset` for ``.h5ad`` files, else an :class:`H5Dataset`."""
    if Path(path).suffix.lower() == ".h5ad":
        return H5adDataset(path, key or "X", **options)
    return H5Dataset(path, key or "x", **options)


registry.datasets.add("h5", H5Dataset)
registry.datasets.add("h5ad", H5adDataset)
