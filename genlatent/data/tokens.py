"""Token vocabularies and the SMILES tokenizer.

Sequences are stored as padded integer ids with a lengths array; the vocabulary (a list of
strings, ids are positions) is stored in the HDF5 file's attributes. Ids 0-3 are always
``<pad> <bos> <eos> <unk>``; every stored sequence ends with ``<eos>``, and its length counts
it. ``<bos>`` is never stored: autoregressive decoders prepend it themselves.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from ..dataspec import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID
from ..errors import DataError

# Bracket atoms, two-letter organic-subset atoms, ring-bond numbers %nn, then single chars.
_SMILES_TOKEN = re.compile(
    r"(\[[^\]]+\]|Br|Cl|%\d{2}|[BCNOPSFIbcnops]|[=#$/\\()+\-.:~@*]|\d|[A-Za-z])"
)


def tokenize_smiles(smiles: str) -> list[str]:
    """Split a SMILES string into atoms, bonds, branches and ring-closure tokens.

    Raises :class:`DataError` if characters are left over (not SMILES).
    """
    tokens = _SMILES_TOKEN.findall(smiles)
    if sum(len(t) for t in tokens) != len(smiles):
        raise DataError(f"cannot tokenize SMILES {smiles!r}: unexpected characters")
    return tokens


def tokenize_chars(text: str) -> list[str]:
    """One token per character (for plain-text sequences)."""
    return list(text)


class Vocabulary:
    """Maps tokens to ids and back; ids 0-3 are the special tokens."""

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tuple(tokens[:4]) != SPECIAL_TOKENS:
            tokens = list(SPECIAL_TOKENS) + [t for t in tokens if t not in SPECIAL_TOKENS]
        if len(set(tokens)) != len(tokens):
            raise DataError("vocabulary has duplicate tokens")
        self.tokens: list[str] = tokens
        self.index: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], min_count: int = 1) -> Vocabulary:
        """A vocabulary of every token seen at least ``min_count`` times, most frequent first."""
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t)
        )
        return cls(list(SPECIAL_TOKENS) + kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], *, allow_unknown: bool = False) -> list[int]:
        """Token ids followed by ``<eos>``; unknown tokens are an error unless allowed."""
        ids = []
        for t in tokens:
            i = self.index.get(t)
            if i is None:
                if not allow_unknown:
                    raise DataError(f"unknown token {t!r} (not in the vocabulary)")
                i = UNK_ID
            ids.append(i)
        ids.append(EOS_ID)
        return ids

    def encode_batch(
        self, sequences: Sequence[Sequence[str]], max_length: int, *, allow_unknown: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Padded ids ``(N, max_length)`` (uint8 or int16) and lengths (``<eos>`` counted)."""
        dtype = np.uint8 if len(self) <= 256 else np.int16
        out = np.full((len(sequences), max_length), PAD_ID, dtype=dtype)
        lengths = np.zeros(len(sequences), dtype=np.int32)
        for row, seq in enumerate(sequences):
            ids = self.encode(seq, allow_unknown=allow_unknown)
            if len(ids) > max_length:
                raise DataError(
                    f"sequence {row} has {len(ids)} tokens with <eos>, more than max_length "
                    f"{max_length}"
                )
            out[row, : len(ids)] = ids
            lengths[row] = len(ids)
        return out, lengths

    def decode(self, ids: Iterable[int], *, join: str = "") -> str:
        """Tokens up to the first ``<eos>`` (pads and ``<bos>`` dropped), joined."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIAL_TOKENS[UNK_ID])
        return join.join(out)
