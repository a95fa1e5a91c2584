"""Readers are registered parts: open_dataset asks each whether it opens a path; ArrayDataset
is the base for readers of other formats and batches exactly like H5Dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from genlatent import registry
from genlatent.data import (
    ArrayDataset,
    H5adDataset,
    H5Dataset,
    make_loader,
    open_dataset,
    reader_for,
)
from genlatent.errors import DataError, RegistryError


def write(path: Path, x: np.ndarray, **labels: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        f["x"] = x
        for name, values in labels.items():
            f[name] = values
    return path


class TextRows(ArrayDataset):
    """A test reader: whitespace-separated numbers, one example per line (``.rows`` files)."""

    description = "rows of numbers (.rows)"

    @classmethod
    def can_open(cls, path: Path) -> bool:
        return path.suffix == ".rows"

    def __init__(self, path, key="x", labels=None, **options) -> None:  # type: ignore[no-untyped-def]
        super().__init__(np.loadtxt(path, dtype=np.float32, ndmin=2), path=path, key=key, **options)


@pytest.fixture
def text_reader() -> Iterator[None]:
    registry.datasets.add("text_rows", TextRows)
    yield
    registry.datasets.unregister("text_rows")


def test_hdf5_and_anndata_are_chosen_by_content(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert reader_for(write(tmp_path / "a.h5", x)).name == "h5"
    assert reader_for(write(tmp_path / "no_suffix", x)).name == "h5"
    anndata = write(tmp_path / "cells.h5", x)  # AnnData content under an HDF5 suffix
    with h5py.File(anndata, "a") as f:
        f.attrs["encoding-type"] = "anndata"
        f["X"] = x
    opened = open_dataset(anndata)
    assert isinstance(opened, H5adDataset) and opened.key == "X"
    assert isinstance(open_dataset(tmp_path / "no_suffix"), H5Dataset)


def test_a_broken_h5_file_keeps_its_own_message(tmp_path: Path) -> None:
    (tmp_path / "text.h5").write_text("hello\n")
    with pytest.raises(DataError, match="text.h5: not an HDF5 file"):
        open_dataset(tmp_path / "text.h5")
    with pytest.raises(DataError, match="nope.h5: file not found"):
        open_dataset(tmp_path / "nope.h5")


def test_a_path_no_reader_opens_lists_the_readers(tmp_path: Path) -> None:
    (tmp_path / "table.csv").write_text("1,2\n")
    with pytest.raises(DataError) as info:
        open_dataset(tmp_path / "table.csv")
    message = str(info.value)
    assert "table.csv: no reader opens it" in message
    assert "an HDF5 file (.h5) (h5)" in message and "(h5ad)" in message
    assert "\n" not in message


def test_a_registered_reader_is_found_and_trains_like_hdf5(
    tmp_path: Path, text_reader: None
) -> None:
    x = np.random.default_rng(0).random((40, 5)).astype(np.float32)
    np.savetxt(tmp_path / "d.rows", x)
    data = open_dataset(tmp_path / "d.rows")
    assert isinstance(data, TextRows) and data.where.endswith("d.rows:x")
    reference = H5Dataset(write(tmp_path / "d.h5", np.loadtxt(tmp_path / "d.rows", np.float32)))
    assert data.spec == reference.spec and len(data) == 40
    mine = list(make_loader(data, batch_size=8, seed=3))
    theirs = list(make_loader(reference, batch_size=8, seed=3))
    for a, b in zip(mine, theirs, strict=True):
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["index"], b["index"])
    train, val = data.split(0.25)
    assert (len(train), len(val)) == (30, 10)
    assert torch.equal(val.read([0])["x"][0], torch.from_numpy(np.loadtxt(tmp_path / "d.rows",
                                                                         np.float32)[30]))


def test_two_claims_are_an_error_and_reader_chooses(tmp_path: Path, text_reader: None) -> None:
    class AlsoRows(TextRows):
        pass

    registry.datasets.add("also_rows", AlsoRows)
    try:
        np.savetxt(tmp_path / "d.rows", np.ones((4, 2)))
        with pytest.raises(DataError, match="several readers claim it: also_rows .*text_rows"):
            open_dataset(tmp_path / "d.rows")
        assert isinstance(open_dataset(tmp_path / "d.rows", reader="also_rows"), AlsoRows)
        with pytest.raises(RegistryError, match="unknown dataset 'nope'"):
            open_dataset(tmp_path / "d.rows", reader="nope")
    finally:
        registry.datasets.unregister("also_rows")


def test_a_reader_whose_check_raises_is_skipped(tmp_path: Path) -> None:
    class Broken(ArrayDataset):
        @classmethod
        def can_open(cls, path: Path) -> bool:
            raise RuntimeError("bug")

    registry.datasets.add("broken_reader", Broken)
    try:
        x = np.ones((3, 2), np.float32)
        assert isinstance(open_dataset(write(tmp_path / "a.h5", x)), H5Dataset)
    finally:
        registry.datasets.unregister("broken_reader")


def test_array_dataset_labels_tokens_and_errors() -> None:
    x = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    data = ArrayDataset(x, {"y": np.array(list("abcabc"))}, path="mem")
    assert data.spec.kind == "grids" and data.spec.shape == (1, 2, 2)
    batch = data.read([5, 0])
    assert torch.allclose(batch["x"][0, 0], torch.from_numpy(x[5] / 255.0).float())
    assert batch["labels"]["y"].tolist() == [2, 0] and data.label_categories["y"] == list("abc")
    vocab = ["<pad>", "<bos>", "<eos>", "<unk>", "C"]
    tokens = ArrayDataset(
        np.array([[4, 2, 0], [4, 4, 2]]), lengths=np.array([2, 3]), vocab=vocab
    )
    assert tokens.spec.kind == "tokens" and tokens.read([0])["x"].tolist() == [[4, 2]]
    with pytest.raises(DataError, match="mem:x: 1 NaN/inf values"):
        ArrayDataset(np.array([[0.0, np.nan], [1.0, 1.0]]), path="mem")
    with pytest.raises(DataError, match="mem:y: labels have 3 rows but 'x' has 6"):
        ArrayDataset(x, {"y": np.zeros(3)}, path="mem")
    with pytest.raises(DataError, match="expected a numeric NumPy array"):
        ArrayDataset([[1, 2]], path="mem")  # type: ignore[arg-type]


def test_built_in_and_array_readers_meet_the_reader_protocol(tmp_path: Path) -> None:
    from genlatent.parts import Reader

    for name in ("h5", "h5ad"):
        cls = registry.datasets.get(name)
        assert cls.default_key and cls.description and callable(cls.can_open)
    x = np.ones((3, 2), np.float32)
    assert isinstance(H5Dataset(write(tmp_path / "a.h5", x)), Reader)
    assert isinstance(ArrayDataset(x), Reader)


def test_the_contracts_import_without_the_readers() -> None:
    import subprocess
    import sys

    code = (
        "import sys, genlatent.parts, genlatent.dataspec\n"
        "loaded = [m for m in sys.modules if m.startswith(('genlatent.data', 'h5py'))]\n"
        "assert loaded == ['genlatent.dataspec'], loaded\n"
        "from genlatent.data import DataSpec\n"
        "assert DataSpec is genlatent.dataspec.DataSpec\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
