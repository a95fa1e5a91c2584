"""``genlatent data``: turn NumPy, SMILES and IDX files into training HDF5; describe one."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import emit_json, progress

_OUT = click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="HDF5 file to write (replaced atomically).",
)
_SHUFFLE = click.option(
    "--shuffle/--no-shuffle",
    default=True,
    show_default=True,
    help="Shuffle the rows once (seeded), so training reads contiguous blocks of a random order.",
)
_SEED = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the shuffle.")


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [n.strip() for n in text.split(",") if n.strip()]


def _report(out: Path) -> None:
    """What was written, read back the way training will read it."""
    from ..data import open_dataset

    dataset = open_dataset(out, None, labels=True)
    spec = dataset.spec
    labels = ", ".join(dataset.labels) or "none"
    vocab = f", vocabulary of {len(spec.vocab)} tokens" if spec.vocab else ""
    click.echo(
        f"wrote {out}: {len(dataset)} examples of {spec.kind} {list(spec.shape)}{vocab}; "
        f"labels: {labels}"
    )


@click.group("data", short_help="Import NumPy, SMILES, IDX files; describe data.")
def data_group() -> None:
    """Prepare and inspect training files.

    \b
    Examples:
      genlatent data import npy images.npz --out images.h5
      genlatent data import smiles molecules.csv --out molecules.h5
      genlatent data import idx train-images-idx3-ubyte.gz \\
          --labels train-labels-idx1-ubyte.gz --out fashion.h5
      genlatent data info fashion.h5
    """


@data_group.group("import")
def import_group() -> None:
    """Convert a file to a genlatent training HDF5 file (key x, labels beside it).

    \b
    Formats:
      npy / npz   a NumPy array (.npy) or an array of a .npz archive, with 1-D labels
                  (also as "numpy")
      smiles      SMILES strings from a CSV (a "smiles" column) or text file, tokenized
                  as SMILES or (--encoding selfies) SELFIES
      idx         MNIST / Fashion-MNIST IDX image (and label) files, gzipped or not
    """


@click.command("npy")
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@_OUT
@click.option(
    "--key", default=None, help=".npz: the array with the data.  [default: x, or the only array]"
)
@click.option(
    "--labels",
    default=None,
    metavar="A,B",
    help=".npz: label arrays to keep.  [default: every other 1-D array of N rows]",
)
@click.option(
    "--kind",
    type=click.Choice(["vectors", "grids", "tokens", "counts"]),
    default=None,
    help="Data kind.  [default: inferred when read]",
)
@_SHUFFLE
@_SEED
def import_npy(
    src: Path,
    out: Path,
    key: str | None,
    labels: str | None,
    kind: str | None,
    shuffle: bool,
    seed: int,
) -> None:
    """Import a NumPy .npy array or one array of a .npz archive (never unpickled).

    \b
    Example:
      genlatent data import npz spectra.npz --key x --labels temperature --out spectra.h5
    """
    from ..data import import_numpy

    progress(f"importing {src}")
    import_numpy(src, out, key=key, labels=_names(labels), kind=kind, shuffle=shuffle, seed=seed)
    _report(out)


@click.command("smiles")
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@_OUT
@click.option(
    "--column",
    default=None,
    help="CSV column of the SMILES.  [default: 'smiles' in any case, else the first]",
)
@click.option("--labels", default=None, metavar="A,B", help="Numeric CSV columns to keep.")
@click.option(
    "--vocab-from",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Use the vocabulary of this training file (for a test split).",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=2),
    default=None,
    help="Tokens per row, <eos> included.  [default: the longest]",
)
@click.option(
    "--allow-unknown",
    is_flag=True,
    help="Map tokens outside --vocab-from's vocabulary to <unk> instead of failing.",
)
@click.option(
    "--encoding",
    type=click.Choice(["smiles", "selfies"]),
    default=None,
    help="Tokens: SMILES atoms/bonds, or SELFIES symbols (every decoded SELFIES is a valid "
    "molecule; needs genlatent[chem]).  [default: --vocab-from's, else smiles]",
)
@_SHUFFLE
@_SEED
def import_smiles(
    src: Path,
    out: Path,
    column: str | None,
    labels: str | None,
    vocab_from: Path | None,
    max_length: int | None,
    allow_unknown: bool,
    encoding: str | None,
    shuffle: bool,
    seed: int,
) -> None:
    """Import SMILES strings (CSV or text, .gz too) as token ids, lengths and the strings.

    \b
    Examples:
      genlatent data import smiles datasets/samples/moses_train_2k.csv --out moses_train.h5
      genlatent data import smiles datasets/samples/moses_test_200.csv \\
          --vocab-from moses_train.h5 --allow-unknown --out moses_test.h5
      genlatent data import smiles molecules.csv --encoding selfies --out selfies.h5
    """
    from ..data import import_smiles as run_import
    from ..data import open_dataset
    from ..data.tokens import encoding_of
    from ..errors import DataError

    vocab = None
    if vocab_from is not None:
        spec = open_dataset(vocab_from, None).spec
        vocab = spec.vocab
        if vocab is None:
            raise DataError(f"--vocab-from {vocab_from}: not token data (no vocabulary)")
        if encoding is not None and encoding != encoding_of(spec.extra):
            raise DataError(
                f"--encoding {encoding}: --vocab-from {vocab_from} holds "
                f"{encoding_of(spec.extra)} tokens"
            )
        encoding = encoding_of(spec.extra)
    progress(f"importing {src}")
    run_import(
        src,
        out,
        column=column,
        labels=_names(labels) or (),
        vocab=vocab,
        max_length=max_length,
        allow_unknown=allow_unknown,
        encoding=encoding or "smiles",
        shuffle=shuffle,
        seed=seed,
    )
    _report(out)


@click.command("idx")
@click.argument("images", type=click.Path(dir_okay=False, path_type=Path))
@_OUT
@click.option(
    "--labels",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="IDX label file of the images (stored as y).",
)
@click.option(
    "--label-names",
    default=None,
    metavar="A,B,...",
    help="Class names, one per label id (used in plots).",
)
@_SHUFFLE
@_SEED
def import_idx(
    images: Path, out: Path, labels: Path | None, label_names: str | None, shuffle: bool, seed: int
) -> None:
    """Import IDX images (MNIST, Fashion-MNIST) as x (N, 1, H, W) and labels y.

    \b
    Example:
      genlatent data import idx t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz \\
          --label-names T-shirt,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Boot \\
          --out fashion_test.h5
    """
    from ..data import import_idx as run_import

    progress(f"importing {images}")
    run_import(
        images, out, labels=labels, label_names=_names(label_names), shuffle=shuffle, seed=seed
    )
    _report(out)


import_group.add_command(import_npy, "npy")
import_group.add_command(import_npy, "npz")
import_group.add_command(import_npy, "numpy")
import_group.add_command(import_smiles)
import_group.add_command(import_idx)


@data_group.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--key", default=None, help="Dataset key.  [default: x, or X for .h5ad]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def data_info(path: Path, key: str | None, as_json: bool) -> None:
    """How genlatent reads a data file: rows, kind, example shape, scale, labels.

    \b
    Example:
      genlatent data info datasets/samples/fashion_mnist_2k.h5
    """
    from ..data import open_dataset

    info = open_dataset(path, key, labels=True).describe()
    if as_json:
        emit_json(info)
        return
    spec = info["spec"]
    click.echo(f"{info['path']}:{info['key']}: {info['rows']} examples")
    click.echo(
        f"  kind {spec['kind']}, example shape {spec['shape']}, stored "
        f"{info['stored_dtype']} {info['stored_shape']}, scale {info['scale']:.6g}"
    )
    if spec.get("vocab"):
        click.echo(f"  vocabulary: {len(spec['vocab'])} tokens")
    for name, dtype in info.get("labels", {}).items():
        cats = info.get("label_categories", {}).get(name)
        extra = ""
        if cats and len(cats) <= 20:
            extra = f" ({len(cats)} classes: {', '.join(map(str, cats))})"
        elif cats:
            extra = f" ({len(cats)} distinct strings)"
        click.echo(f"  label {name}: {dtype}{extra}")
    click.echo(f"  read {'from memory' if info['in_memory'] else 'streaming from the file'}")
