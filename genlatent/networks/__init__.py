"""Encoders and decoders: MLP (flat data), CNN (1-D and 2-D grids), GRU (token sequences).

Importing this package registers ``"mlp"``, ``"cnn"`` and ``"gru"`` in
``registry.encoders`` and ``registry.decoders``; the registry does so lazily on first lookup.
Every network sizes itself from the :class:`~genlatent.dataspec.DataSpec`. See
``docs/networks.md``.
"""

from __future__ import annotations

from .cnn import CNNDecoder, CNNEncoder, stage_sizes
from .gru import GRUDecoder, GRUEncoder, sequence_lengths
from .mlp import MLPDecoder, MLPEncoder

__all__ = [
    "CNNDecoder",
    "CNNEncoder",
    "GRUDecoder",
    "GRUEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "sequence_lengths",
    "stage_sizes",
]
