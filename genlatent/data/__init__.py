"""Data: readers (HDF5, AnnData, plugins'), the block-shuffle loader, importers, vocabularies.

Imported lazily by the registry, which it fills with the built-in readers
(``registry.datasets``: ``h5``, ``h5ad``); importing it only defines classes and functions
(torch, numpy; h5py is imported when a file is opened).
"""

from __future__ import annotations

from .. import registry
from ..dataspec import BOS_ID, EOS_ID, KINDS, PAD_ID, SPECIAL_TOKENS, UNK_ID, DataSpec
from .arrays import ArrayDataset
from .h5 import DEFAULT_MEMORY_LIMIT, H5Dataset, open_h5
from .h5ad import H5adDataset
from .importers import import_idx, import_numpy, import_smiles, read_idx, write_h5
from .loader import BlockLoader, make_loader
from .readers import open_dataset, reader_for
from .rows import RowDataset
from .sampler import BlockShuffleSampler
from .tokens import Vocabulary, tokenize_chars, tokenize_smiles

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "H5Dataset",
    "H5adDataset",
    "ArrayDataset",
    "RowDataset",
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
    "reader_for",
    "open_h5",
    "import_numpy",
    "import_smiles",
    "import_idx",
    "read_idx",
    "write_h5",
]


registry.datasets.add("h5", H5Dataset)
registry.datasets.add("h5ad", H5adDataset)
