"""What a dataset holds, so that models size themselves from the data.

A :class:`DataSpec` travels inside the model spec (as a plain dict) and is all a network or a
likelihood needs to know about the data: its kind, the shape of one example, its dtype and,
for token sequences, the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError

KINDS = ("vectors", "grids", "tokens", "counts")

# Token ids reserved at the start of every vocabulary.
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)


@dataclass(frozen=True)
class DataSpec:
    """Shape and kind of one example.

    - ``vectors``: shape ``(D,)``, real or [0, 1] values.
    - ``grids``: shape ``(C, H, W)`` or ``(C, L)`` (images, lattices, spectra).
    - ``tokens``: shape ``(max_length,)`` of token ids; ``vocab`` lists the tokens, the first
      four being ``<pad> <bos> <eos> <unk>``; stored sequences end with ``<eos>``.
    - ``counts``: shape ``(D,)`` of non-negative integer counts (single-cell data).
    """

    kind: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    vocab: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpecError(f"data kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        shape = tuple(int(s) for s in self.shape)
        if not shape or any(s <= 0 for s in shape):
            raise SpecError(f"data shape must be non-empty and positive, got {list(self.shape)}")
        object.__setattr__(self, "shape", shape)
        if self.kind == "tokens":
            if len(shape) != 1:
                raise SpecError(f"token data has shape (max_length,), got {list(shape)}")
            if not self.vocab or tuple(self.vocab[:4]) != SPECIAL_TOKENS:
                raise SpecError(
                    f"token data needs a vocabulary starting with {' '.join(SPECIAL_TOKENS)}"
                )
            object.__setattr__(self, "vocab", tuple(self.vocab))
        elif self.vocab is not None:
            raise SpecError(f"only token data has a vocabulary, not {self.kind!r} data")
        if self.kind == "grids" and len(shape) not in (2, 3):
            raise SpecError(f"grid data has shape (C, L) or (C, H, W), got {list(shape)}")
        if self.kind in ("vectors", "counts") and len(shape) != 1:
            raise SpecError(f"{self.kind} data has shape (D,), got {list(shape)}")

    @property
    def size(self) -> int:
        """Number of values in one example."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def vocab_size(self) -> int:
        """Number of tokens (token data only)."""
        if self.vocab is None:
            raise SpecError(f"{self.kind} data has no vocabulary")
        return len(self.vocab)

    @property
    def max_length(self) -> int:
        """Longest sequence, ``<eos>`` included (token data only)."""
        return self.shape[0]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "shape": list(self.shape), "dtype": self.dtype}
        if self.vocab is not None:
            out["vocab"] = list(self.vocab)
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | DataSpec) -> DataSpec:
        if isinstance(d, DataSpec):
            return d
        if not isinstance(d, dict) or "kind" not in d or "shape" not in d:
            raise SpecError(f"a data spec needs 'kind' and 'shape', got {d!r}")
        vocab = d.get("vocab")
        return cls(
            kind=d["kind"],
            shape=tuple(d["shape"]),
            dtype=d.get("dtype", "float32"),
            vocab=tuple(vocab) if vocab is not None else None,
            extra=dict(d.get("extra", {})),
        )
