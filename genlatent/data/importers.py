"""Turn common formats into genlatent training files (``genlatent data import ...``).

Every importer writes, atomically, one HDF5 file whose arrays are contiguous, uncompressed and
aligned on axis 0, with rows pre-shuffled once (seeded) unless ``shuffle=False``: training then
reads contiguous blocks of an already random order. Layout::

    x        the data, with attributes kind (and scale, layout, vocab where they apply)
    lengths  token data: ids per row, <eos> included
    smiles   SMILES imports: the raw strings, fixed-length bytes S{n}
    <label>  aligned 1-D label arrays (e.g. y), names listed in the root attribute 'labels'
    root attributes: genlatent_format, source, shuffled, seed

Errors are :class:`~genlatent.errors.DataError` with a one-line message naming the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..dataspec import KINDS
from ..errors import DataError
from .tokens import Vocabulary, check_encoding, tokenize_molecule

__all__ = ["write_h5", "import_numpy", "import_smiles", "import_idx", "read_idx", "FORMAT_VERSION"]

FORMAT_VERSION = 1
PathLike = str | os.PathLike[str]


def write_h5(
    out: PathLike,
    x: np.ndarray,
    *,
    labels: Mapping[str, np.ndarray] | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
    attrs: Mapping[str, Any] | None = None,
    root_attrs: Mapping[str, Any] | None = None,
    label_attrs: Mapping[str, Mapping[str, Any]] | None = None,
    shuffle: bool = True,
    seed: int = 0,
) -> Path:
    """Write ``x`` (key ``x``), ``labels`` and ``extra`` aligned arrays to ``out`` atomically.

    With ``shuffle`` the rows of every array get the same seeded permutation. ``attrs`` go on
    ``x`` (strings, numbers; lists are stored as JSON), ``label_attrs[name]`` on that array,
    ``root_attrs`` on the file.
    """
    import h5py

    out = Path(out)
    n = x.shape[0] if x.ndim else 0
    if n == 0:
        raise DataError(f"{out}: nothing to write (0 rows)")
    arrays = {"x": x, **dict(extra or {}), **dict(labels or {})}
    for name, values in arrays.items():
        if values.shape[:1] != (n,):
            raise DataError(f"{out}: {name!r} has {values.shape[:1]} rows, expected {n} like x")
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, values in arrays.items():
                values = np.ascontiguousarray(values[order] if order is not None else values)
                f.create_dataset(name, data=values)  # contiguous, uncompressed
            for key, value in (attrs or {}).items():
                f["x"].attrs[key] = _attr(value)
            for name, extra_attrs in (label_attrs or {}).items():
                for key, value in extra_attrs.items():
                    f[name].attrs[key] = _attr(value)
            f.attrs["genlatent_format"] = FORMAT_VERSION
            f.attrs["shuffled"] = bool(shuffle)
            f.attrs["seed"] = int(seed)
            f.attrs["labels"] = json.dumps(list(labels or {}))
            for key, value in (root_attrs or {}).items():
                f.attrs[key] = _attr(value)
    return out


def _attr(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def _check_source(src: PathLike) -> Path:
    src = Path(src)
    if not src.exists():
        raise DataError(f"{src}: file not found")
    if src.is_dir():
        raise DataError(f"{src}: is a folder, expected a file")
    return src


# --------------------------------------------------------------------------- NumPy


def import_numpy(
    src: PathLike,
    out: PathLike,
    *,
    key: str | None = None,
    labels: Sequence[str] | None = None,
    kind: str | None = None,
    shuffle: bool = True,
    seed: int = 0,
) -> Path:
    """A ``.npy`` array, or one array of a ``.npz`` archive, to an HDF5 training file.

    ``.npz``: ``key`` names the data (default ``x``, or the only array); ``labels`` name
    aligned 1-D arrays to keep (default: every other 1-D array of the same length). Pickled
    (object) arrays are refused: they could run code.
    """
    src = _check_source(src)
    if kind is not None and kind not in KINDS:
        raise DataError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    try:
        loaded = np.load(src, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{src}: cannot load without pickle ({_line(exc)})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{src}: not a NumPy .npy/.npz file ({_line(exc)})") from None
    label_arrays: dict[str, np.ndarray] = {}
    if isinstance(loaded, np.ndarray):
        if labels:
            raise DataError(f"{src}: a .npy file holds one array; labels need a .npz archive")
        x = loaded
        data_key = "x"
    else:
        with loaded:
            names = list(loaded.files)
            if not names:
                raise DataError(f"{src}: the archive holds no arrays")
            data_key = key or ("x" if "x" in names else names[0] if len(names) == 1 else None)
            if data_key is None:
                raise DataError(f"{src}: several arrays ({', '.join(names)}); choose one with key")
            if data_key not in names:
                raise DataError(f"{src}: no array {data_key!r}; arrays: {', '.join(names)}")
            try:
                x = loaded[data_key]
                wanted = labels
                if wanted is None:
                    wanted = [n for n in names if n != data_key]
                for name in wanted:
                    if name not in names:
                        raise DataError(
                            f"{src}: no label array {name!r}; arrays: {', '.join(names)}"
                        )
                    values = loaded[name]
                    if labels is None and (values.ndim != 1 or values.shape[0] != x.shape[0]):
                        continue  # not a per-row label: skip it when labels were not named
                    label_arrays[name] = values
            except ValueError as exc:
                raise DataError(f"{src}: cannot load without pickle ({_line(exc)})") from None
    if x.dtype.kind not in "biuf":
        raise DataError(f"{src}:{data_key}: dtype {x.dtype} is not numeric")
    if x.ndim < 2:
        raise DataError(f"{src}:{data_key}: shape {x.shape} has no example axis; expected (N, ...)")
    for name, values in label_arrays.items():
        if values.ndim != 1 or values.shape[0] != x.shape[0]:
            raise DataError(
                f"{src}:{name}: labels have shape {values.shape}, expected ({x.shape[0]},)"
            )
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1))
        raise DataError(
            f"{src}:{data_key}: NaN/inf values in {bad.size} rows (first rows "
            f"{', '.join(map(str, bad[:5]))})"
        )
    if x.dtype == np.float64:
        x = x.astype(np.float32)
    attrs = {"kind": kind} if kind else {}
    return write_h5(
        out,
        x,
        labels=label_arrays,
        attrs=attrs,
        root_attrs={"source": src.name},
        shuffle=shuffle,
        seed=seed,
    )


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- SMILES


def _open_text(src: Path) -> io.TextIOBase:
    if src.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(src, "rb"), encoding="utf-8")
    return open(src, encoding="utf-8", newline="")


def read_smiles_file(
    src: PathLike, column: str | None = None
) -> tuple[list[str], dict[str, list[str]]]:
    """SMILES strings and the other columns (as text) of a CSV or a TXT file (``.gz`` too).

    CSV (``.csv``): the column ``column``, else one named ``smiles`` in any case, else the first.
    TXT: the first whitespace-separated field of each non-empty line.
    """
    src = _check_source(src)
    name = src.name[:-3] if src.name.endswith(".gz") else src.name
    try:
        with _open_text(src) as handle:
            if name.endswith(".csv"):
                rows = csv.reader(handle)
                header = next(rows, None)
                if header is None:
                    raise DataError(f"{src}: the file is empty")
                if column is None:
                    lowered = [h.strip().lower() for h in header]
                    col = lowered.index("smiles") if "smiles" in lowered else 0
                elif column in header:
                    col = header.index(column)
                else:
                    raise DataError(f"{src}: no column {column!r}; columns: {', '.join(header)}")
                others = {h: [] for i, h in enumerate(header) if i != col}
                smiles: list[str] = []
                for line_no, row in enumerate(rows, start=2):
                    if not row:
                        continue
                    if len(row) != len(header):
                        raise DataError(
                            f"{src}: line {line_no} has {len(row)} fields, expected {len(header)}"
                        )
                    smiles.append(row[col].strip())
                    for i, h in enumerate(header):
                        if i != col:
                            others[h].append(row[i])
                return smiles, others
            return [line.split()[0] for line in handle if line.strip()], {}
    except (UnicodeDecodeError, OSError, EOFError, csv.Error) as exc:
        raise DataError(f"{src}: cannot read as text ({_line(exc)})") from None


def import_smiles(
    src: PathLike,
    out: PathLike,
    *,
    column: str | None = None,
    labels: Sequence[str] = (),
    vocab: Sequence[str] | None = None,
    max_length: int | None = None,
    allow_unknown: bool = False,
    encoding: str = "smiles",
    shuffle: bool = True,
    seed: int = 0,
) -> Path:
    """SMILES from a CSV/TXT file (``.gz`` too) to padded token ids, lengths and raw strings.

    ``encoding`` picks the tokens: ``"smiles"`` (the SMILES string's atoms, bonds, branches
    and ring closures) or ``"selfies"`` (the SELFIES symbols of each molecule, needs the
    ``selfies`` package); it is stored as the ``tokenizer`` attribute of ``x``.

    The vocabulary is built from the data (most frequent tokens first) unless ``vocab`` is
    given (e.g. the training file's, for a test split); tokens outside a given vocabulary are
    an error unless ``allow_unknown`` maps them to ``<unk>``. ``max_length`` (``<eos>``
    included) defaults to the longest sequence. ``labels`` names numeric CSV columns to keep.
    """
    check_encoding(encoding)
    smiles, columns = read_smiles_file(src, column)
    src = Path(src)
    if not smiles:
        raise DataError(f"{src}: no SMILES found")
    tokenized = []
    for i, s in enumerate(smiles):
        if not s:
            raise DataError(f"{src}: empty SMILES in row {i + 1}")
        try:
            tokenized.append(tokenize_molecule(s, encoding))
        except DataError as exc:
            raise DataError(f"{src}: row {i + 1}: {exc}") from None
    vocabulary = (
        Vocabulary(vocab, encoding=encoding)
        if vocab is not None
        else Vocabulary.build(tokenized, encoding=encoding)
    )
    longest = max(len(t) for t in tokenized) + 1
    max_length = max_length or longest
    try:
        ids, lengths = vocabulary.encode_batch(tokenized, max_length, allow_unknown=allow_unknown)
    except DataError as exc:
        raise DataError(f"{src}: {exc}") from None
    label_arrays = {}
    for name in labels:
        if name not in columns:
            raise DataError(f"{src}: no column {name!r}; columns: {', '.join(columns) or '(none)'}")
        try:
            label_arrays[name] = np.array([float(v) for v in columns[name]], dtype=np.float32)
        except ValueError:
            raise DataError(f"{src}: column {name!r} is not numeric") from None
    raw = np.array([s.encode("ascii", "replace") for s in smiles])
    return write_h5(
        out,
        ids,
        labels=label_arrays,
        extra={"lengths": lengths, "smiles": raw.astype(f"S{max(1, raw.dtype.itemsize)}")},
        attrs={"kind": "tokens", "vocab": vocabulary.tokens, "tokenizer": encoding},
        root_attrs={"source": src.name},
        shuffle=shuffle,
        seed=seed,
    )


# --------------------------------------------------------------------------- IDX

_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: PathLike) -> np.ndarray:
    """An IDX file (the MNIST / Fashion-MNIST format), gzipped or not, as an array."""
    path = _check_source(path)
    try:
        with open(path, "rb") as handle:
            gz = handle.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gz else open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({_line(exc)})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path}: IDX header is cut short")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{path}: IDX body has {len(data) - header} bytes, shape {shape} needs {expected} "
            f"(truncated?)"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def import_idx(
    images: PathLike,
    out: PathLike,
    *,
    labels: PathLike | None = None,
    label_names: Sequence[str] | None = None,
    shuffle: bool = True,
    seed: int = 0,
) -> Path:
    """IDX images (and an IDX label file) to ``x`` (N, 1, H, W) and labels ``y``.

    uint8 pixels are stored as they are with the attribute ``scale = 1/255`` (read as [0, 1]
    floats). ``label_names`` (one per class id) are stored as the JSON attribute
    ``label_names`` of ``y``.
    """
    x = read_idx(images)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim not in (2, 4):
        raise DataError(f"{images}: IDX images have shape {x.shape}; expected (N, H, W)")
    label_arrays = {}
    if labels is not None:
        y = read_idx(labels)
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(
                f"{labels}: {y.shape[0]} labels for {x.shape[0]} images in {Path(images).name}"
            )
        label_arrays["y"] = y
    attrs: dict[str, Any] = {"kind": "grids" if x.ndim == 4 else "vectors"}
    if x.dtype == np.uint8:
        attrs["scale"] = 1.0 / 255.0
    label_attrs = {}
    if label_names is not None and label_arrays:
        label_attrs["y"] = {"label_names": list(label_names)}
    return write_h5(
        out,
        x,
        labels=label_arrays,
        attrs=attrs,
        label_attrs=label_attrs,
        root_attrs={"source": Path(images).name},
        shuffle=shuffle,
        seed=seed,
    )
