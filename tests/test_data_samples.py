"""The sample files shipped in datasets/samples load as documented (README quick start)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from genlatent.data import H5Dataset, Vocabulary, make_loader, tokenize_smiles

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"


@pytest.mark.parametrize(
    ("name", "rows"), [("fashion_mnist_2k.h5", 2000), ("fashion_mnist_test_500.h5", 500)]
)
def test_fashion_mnist_samples(name, rows):
    data = H5Dataset(SAMPLES / name, labels="y")
    assert len(data) == rows
    assert data.spec.kind == "grids" and data.spec.shape == (1, 28, 28)
    assert data.label_categories["y"][0] == "T-shirt/top" and len(data.label_categories["y"]) == 10
    batch = data.read(np.arange(rows))
    x, y = batch["x"], batch["labels"]["y"]
    assert x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9
    assert torch.bincount(y).tolist() == [rows // 10] * 10  # class-balanced
    assert (SAMPLES / name).stat().st_size < 2_000_000


def test_moses_sample_tokens_decode_to_the_csv():
    data = H5Dataset(SAMPLES / "moses_2k.h5")
    assert data.spec.kind == "tokens" and len(data) == 2000
    csv = (SAMPLES / "moses_train_2k.csv").read_text().split()[1:]
    vocab = Vocabulary(data.spec.vocab)
    batch = next(iter(make_loader(data, 64, seed=0)))
    assert batch["x"].shape[1] == int(batch["lengths"].max())
    for ids, n in zip(batch["x"].tolist(), batch["lengths"].tolist(), strict=True):
        smiles = vocab.decode(ids)
        assert smiles in csv and n == len(tokenize_smiles(smiles)) + 1
