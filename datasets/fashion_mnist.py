"""Fashion-MNIST (Zalando, 28x28 grey clothes images, 10 classes) as genlatent HDF5 files.

Source: the Debian package's IDX files::

    apt-get update && apt-get install -y dataset-fashion-mnist
    python datasets/fashion_mnist.py --out data/            # fashion_mnist_{train,test}.h5
    python datasets/fashion_mnist.py --samples datasets/samples   # the small sample files

Layout of each file (rows pre-shuffled with the seed, contiguous, uncompressed)::

    x   (N, 1, 28, 28) uint8   pixels; attribute scale = 1/255, so batches are floats in [0, 1]
    y   (N,) uint8             class id; attribute label_names (JSON list of the 10 names)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from genlatent.data import H5Dataset, import_idx, read_idx, write_h5

SOURCE = Path("/usr/share/datasets/fashion-mnist")
LABEL_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
SPLITS = {"train": "train", "test": "t10k"}


def idx_paths(source: Path, split: str) -> tuple[Path, Path]:
    prefix = SPLITS[split]
    images = source / f"{prefix}-images-idx3-ubyte.gz"
    labels = source / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.exists():
        sys.exit(
            f"error: {images} not found; install it with "
            f"'apt-get update && apt-get install -y dataset-fashion-mnist' or pass --source"
        )
    return images, labels


def make_full(source: Path, out: Path, seed: int) -> list[Path]:
    """The full train (60000) and test (10000) splits."""
    written = []
    for split in SPLITS:
        images, labels = idx_paths(source, split)
        path = import_idx(
            images, out / f"fashion_mnist_{split}.h5", labels=labels,
            label_names=LABEL_NAMES, seed=seed,
        )  # fmt: skip
        written.append(path)
    return written


def make_sample(source: Path, out: Path, split: str, n: int, seed: int) -> Path:
    """``n`` images of a split, class-balanced, pre-shuffled (small files for tests/README)."""
    images, labels = idx_paths(source, split)
    x, y = read_idx(images), read_idx(labels)
    rng = np.random.default_rng(seed)
    per_class = n // len(LABEL_NAMES)
    keep = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
    )
    name = f"fashion_mnist_{'2k' if split == 'train' else 'test_500'}.h5"
    return write_h5(
        out / name,
        x[keep][:, None],
        labels={"y": y[keep]},
        attrs={"kind": "grids", "scale": 1.0 / 255.0},
        label_attrs={"y": {"label_names": LABEL_NAMES}},
        root_attrs={"source": f"Fashion-MNIST {split} split (Debian dataset-fashion-mnist)"},
        seed=seed,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="folder of the IDX .gz files")
    parser.add_argument("--out", type=Path, help="folder for the full train/test files")
    parser.add_argument("--samples", type=Path, help="folder for the small sample files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.out and not args.samples:
        parser.error("give --out and/or --samples")
    written = []
    if args.out:
        written += make_full(args.source, args.out, args.seed)
    if args.samples:
        written.append(make_sample(args.source, args.samples, "train", 2000, args.seed))
        written.append(make_sample(args.source, args.samples, "test", 500, args.seed))
    for path in written:
        ds = H5Dataset(path, labels="y")
        print(f"{path}: {len(ds)} rows, {ds.spec.kind} {list(ds.spec.shape)}, "
              f"{path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
