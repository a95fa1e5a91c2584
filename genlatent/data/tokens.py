"""Token vocabularies, the SMILES tokenizer, and SELFIES.

Sequences are stored as padded integer ids with a lengths array; the vocabulary (a list of
strings, ids are positions) is stored in the HDF5 file's attributes. Ids 0-3 are always
``<pad> <bos> <eos> <unk>``; every stored sequence ends with ``<eos>``, and its length counts
it. ``<bos>`` is never stored: autoregressive decoders prepend it themselves.

Molecules are tokenised in one of two encodings (:data:`ENCODINGS`), recorded with the
vocabulary (the ``tokenizer`` attribute of the file's ``x``; a model's data spec carries it as
``extra["encoding"]`` when it is not the default ``"smiles"``):

- ``smiles``: atoms, bonds, branches and ring closures of the SMILES string;
- ``selfies`` (Krenn et al. 2020, the ``selfies`` package of the ``chem`` extra): SELFIES
  symbols such as ``[C]``, ``[=O]``, ``[Branch1]``. Every sequence of SELFIES symbols decodes
  to a valid molecule, so a decoder cannot produce an invalid one; :func:`to_smiles` turns
  decoded SELFIES back into SMILES.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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


ENCODINGS = ("smiles", "selfies")


def _selfies() -> Any:
    try:
        import selfies
    except ImportError:
        raise DataError(
            "the SELFIES encoding needs the selfies package: pip install 'genlatent[chem]'"
        ) from None
    return selfies


def check_encoding(encoding: str) -> str:
    """``encoding`` if it is one of :data:`ENCODINGS`, else a :class:`DataError`."""
    if encoding not in ENCODINGS:
        raise DataError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    return encoding


def smiles_to_selfies(smiles: str) -> str:
    """The SELFIES string of a SMILES string; :class:`DataError` when it cannot be encoded."""
    sf = _selfies()
    try:
        return sf.encoder(smiles)
    except sf.EncoderError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "not encodable"
        raise DataError(f"cannot encode SMILES {smiles!r} as SELFIES: {reason}") from None


def tokenize_selfies(selfies_string: str) -> list[str]:
    """The symbols of a SELFIES string (``[C]``, ``[=O]``, ``[Ring1]``, ``.``)."""
    tokens = list(_selfies().split_selfies(selfies_string))
    if "".join(tokens) != selfies_string:
        raise DataError(f"cannot tokenize SELFIES {selfies_string!r}")
    return tokens


def tokenize_molecule(smiles: str, encoding: str = "smiles") -> list[str]:
    """A SMILES string as tokens of ``encoding`` (SELFIES symbols are made from the SMILES)."""
    if check_encoding(encoding) == "selfies":
        return tokenize_selfies(smiles_to_selfies(smiles))
    return tokenize_smiles(smiles)


def to_smiles(text: str, encoding: str = "smiles") -> str:
    """Decoded token text as SMILES: SELFIES decoded (``""`` when it cannot be), SMILES as is.

    Never raises for bad input: a molecule that cannot be decoded is counted as invalid by
    the metrics, not an error.
    """
    if check_encoding(encoding) == "smiles":
        return text
    sf = _selfies()
    try:
        return sf.decoder(text) or ""
    except (sf.DecoderError, ValueError, KeyError, IndexError):
        return ""


def encoding_of(extra: Mapping[str, Any] | None) -> str:
    """The molecule encoding a data spec's ``extra`` records (``"smiles"`` when none)."""
    return str((extra or {}).get("encoding", "smiles"))


def encoding_extra(tokenizer: Any) -> dict[str, Any]:
    """A data spec's ``extra`` for a file's ``tokenizer`` attribute: ``{"encoding": ...}`` for
    a non-default encoding, ``{}`` otherwise (so SMILES specs stay as they always were)."""
    if isinstance(tokenizer, bytes):
        tokenizer = tokenizer.decode()
    if tokenizer in ENCODINGS and tokenizer != "smiles":
        return {"encoding": tokenizer}
    return {}


def tokenize_chars(text: str) -> list[str]:
    """One token per character (for plain-text sequences)."""
    return list(text)


class Vocabulary:
    """Maps tokens to ids and back; ids 0-3 are the special tokens."""

    def __init__(self, tokens: Sequence[str], encoding: str = "smiles") -> None:
        tokens = list(tokens)
        if tuple(tokens[:4]) != SPECIAL_TOKENS:
            tokens = list(SPECIAL_TOKENS) + [t for t in tokens if t not in SPECIAL_TOKENS]
        if len(set(tokens)) != len(tokens):
            raise DataError("vocabulary has duplicate tokens")
        self.tokens: list[str] = tokens
        self.index: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self.encoding = check_encoding(encoding)

    @classmethod
    def build(
        cls, sequences: Iterable[Sequence[str]], min_count: int = 1, encoding: str = "smiles"
    ) -> Vocabulary:
        """A vocabulary of every token seen at least ``min_count`` times, most frequent first."""
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t)
        )
        return cls(list(SPECIAL_TOKENS) + kept, encoding=encoding)

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

    def decode_smiles(self, ids: Iterable[int]) -> str:
        """The molecule of a sequence of ids as SMILES (``""`` when SELFIES cannot decode)."""
        return to_smiles(self.decode(ids), self.encoding)
