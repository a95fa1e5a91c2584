"""MOSES molecules (SMILES, ~1.6M train / 176k test) as genlatent token files.

Source: the CSV files shipped in the ``molsets`` wheel (the package itself is never imported,
it pins old dependencies)::

    pip install --no-deps molsets
    python datasets/moses_smiles.py --out data/          # moses_{train,test}.h5
    python datasets/moses_smiles.py --out data/ --encoding selfies   # moses_selfies_*.h5
    python datasets/moses_smiles.py --samples datasets/samples   # a small token sample file

The test split is encoded with the training vocabulary (unknown tokens become ``<unk>``), so
a model trained on one scores the other. Layout of each file (rows pre-shuffled with the seed,
contiguous, uncompressed)::

    x        (N, L) uint8   token ids, padded with <pad>=0, each row ends with <eos>=2
                            attributes: kind = "tokens", vocab (JSON list), tokenizer
                            ("smiles", or "selfies": SELFIES symbols, made with the selfies
                            package, Krenn et al. 2020)
    lengths  (N,) int32     tokens per row, <eos> included
    smiles   (N,) S{n}      the raw SMILES strings (fixed-length bytes)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

from genlatent.data import H5Dataset, import_smiles
from genlatent.data.importers import read_smiles_file
from genlatent.errors import DataError

SAMPLES = Path(__file__).resolve().parent / "samples"


def moses_data_dir() -> Path:
    """Where pip put moses/dataset/data (found without importing moses)."""
    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: molsets is not installed; run 'pip install --no-deps molsets'")
    folder = Path(list(spec.submodule_search_locations)[0]) / "dataset" / "data"
    if not (folder / "train.csv.gz").exists():
        sys.exit(f"error: {folder}/train.csv.gz not found; reinstall molsets")
    return folder


def subset(source: Path, rows: int | None, folder: Path, seed: int) -> Path:
    """``source`` itself, or a CSV of ``rows`` of its molecules drawn at random (seeded)."""
    if not rows:
        return source
    smiles, _ = read_smiles_file(source)
    chosen = np.random.default_rng(seed).choice(len(smiles), size=min(rows, len(smiles)),
                                                replace=False)  # fmt: skip
    out = folder / f"{source.name.split('.')[0]}_{rows}.csv"
    out.write_text("SMILES\n" + "".join(smiles[i] + "\n" for i in np.sort(chosen)))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="folder with train.csv.gz and test.csv.gz")
    parser.add_argument("--out", type=Path, help="folder for moses_train.h5 and moses_test.h5")
    parser.add_argument("--samples", type=Path, help="folder for moses_2k.h5 (from the CSV sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoding", choices=["smiles", "selfies"], default="smiles")
    parser.add_argument(
        "--rows", type=int, default=None, help="a random subset of N training molecules"
    )
    parser.add_argument(
        "--test-rows", type=int, default=None, help="a random subset of N test molecules"
    )
    args = parser.parse_args(argv)
    if not args.out and not args.samples:
        parser.error("give --out and/or --samples")
    written = []
    if args.out:
        source = args.source or moses_data_dir()
        stem = "moses" if args.encoding == "smiles" else f"moses_{args.encoding}"
        if args.rows:
            stem += f"_{args.rows // 1000}k"
        with tempfile.TemporaryDirectory() as tmp:
            train_csv = subset(source / "train.csv.gz", args.rows, Path(tmp), args.seed)
            test_csv = subset(source / "test.csv.gz", args.test_rows, Path(tmp), args.seed)
            train = args.out / f"{stem}_train.h5"
            if not train.exists():  # made already by an interrupted run: reuse it
                import_smiles(train_csv, train, encoding=args.encoding, seed=args.seed)
            spec = H5Dataset(train, check=False).spec
            options = dict(vocab=spec.vocab, allow_unknown=True, encoding=args.encoding,
                           seed=args.seed)  # fmt: skip
            try:  # the training width, so the test file can be a --val file
                test = import_smiles(
                    test_csv, args.out / f"{stem}_test.h5", max_length=spec.max_length, **options
                )
            except DataError:  # a test molecule is longer: its own width
                test = import_smiles(test_csv, args.out / f"{stem}_test.h5", **options)
        written += [train, test]
    if args.samples:
        sample = SAMPLES / "moses_train_2k.csv"
        written.append(import_smiles(sample, args.samples / "moses_2k.h5", seed=args.seed))
    for path in written:
        ds = H5Dataset(path)
        print(f"{path}: {len(ds)} rows, vocabulary {ds.spec.vocab_size} tokens, max length "
              f"{ds.spec.max_length}, {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
