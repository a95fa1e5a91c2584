"""H5Dataset: specs inferred from files, decoding, tokens, pickling, and every bad input."""

from __future__ import annotations

import json
import pickle

import h5py
import numpy as np
import pytest
import torch

from genlatent import registry
from genlatent.data import EOS_ID, H5Dataset, Vocabulary, make_loader, open_dataset
from genlatent.errors import DataError, GenlatentError


def write(path, **arrays):
    attrs = arrays.pop("attrs", {})
    with h5py.File(path, "w") as f:
        for name, values in arrays.items():
            f[name] = values
        for key, value in attrs.items():
            f["x"].attrs[key] = value
    return path


def test_vectors_float(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    ds = H5Dataset(write(tmp_path / "v.h5", x=x))
    assert ds.spec.kind == "vectors" and ds.spec.shape == (5,) and len(ds) == 20
    assert ds.in_memory  # small: loaded whole
    np.testing.assert_array_equal(ds[3]["x"].numpy(), x[3])
    assert ds[-1]["index"].item() == 19


def test_uint8_images_gain_channel_and_scale(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(10, 8, 8), dtype=np.uint8)
    ds = H5Dataset(write(tmp_path / "g.h5", x=x), in_memory=False)
    assert ds.spec.kind == "grids" and ds.spec.shape == (1, 8, 8)
    batch = ds.read([2, 0])
    assert batch["x"].shape == (2, 1, 8, 8) and batch["x"].dtype == torch.float32
    np.testing.assert_allclose(batch["x"][0, 0].numpy(), x[2] / 255.0, rtol=1e-6)


def test_binary_uint8_kept_and_scale_attribute_wins(tmp_path):
    x = np.random.default_rng(0).integers(0, 2, size=(10, 1, 4, 4), dtype=np.uint8)
    ds = H5Dataset(write(tmp_path / "b.h5", x=x))
    assert ds.spec.shape == (1, 4, 4)
    assert set(np.unique(ds.read(np.arange(10))["x"].numpy())) <= {0.0, 1.0}
    ds = H5Dataset(write(tmp_path / "s.h5", x=x, attrs={"scale": 0.5}))
    assert ds.read([0])["x"].max().item() <= 0.5
    assert H5Dataset(tmp_path / "s.h5", scale=None).read([0])["x"].max().item() >= 0.0


def test_layouts_and_kind_override(tmp_path):
    spectra = np.ones((6, 2, 50), np.float32)
    assert H5Dataset(write(tmp_path / "c.h5", x=spectra)).spec.shape == (2, 50)
    assert H5Dataset(tmp_path / "c.h5", layout="HW").spec.shape == (1, 2, 50)
    counts = np.ones((6, 9), np.int32)
    assert H5Dataset(write(tmp_path / "n.h5", x=counts)).spec.kind == "counts"
    assert H5Dataset(tmp_path / "n.h5", kind="vectors").spec.kind == "vectors"
    with_attr = write(tmp_path / "a.h5", x=spectra, attrs={"layout": "HW"})
    assert H5Dataset(with_attr).spec.shape == (1, 2, 50)


def token_file(path, sequences, vocab=None):
    tokens = [list(s) for s in sequences]
    vocabulary = Vocabulary(vocab) if vocab else Vocabulary.build(tokens)
    ids, lengths = vocabulary.encode_batch(tokens, max(len(t) for t in tokens) + 3)
    with h5py.File(path, "w") as f:
        f["x"] = ids
        f["lengths"] = lengths
        f["x"].attrs["vocab"] = json.dumps(vocabulary.tokens)
    return path, vocabulary


def test_tokens_are_trimmed_per_batch(tmp_path):
    path, vocab = token_file(tmp_path / "t.h5", ["CC", "CCCCCO", "C", "OCO"])
    ds = H5Dataset(path)
    assert ds.spec.kind == "tokens" and ds.spec.max_length == 9
    assert ds.spec.vocab == tuple(vocab.tokens)
    batch = ds.read([0, 2])
    assert batch["x"].shape == (2, 3) and batch["x"].dtype == torch.int64
    assert batch["lengths"].tolist() == [3, 2]
    assert batch["x"][0].tolist() == vocab.encode(list("CC"))
    assert batch["x"][1].tolist() == vocab.encode(["C"]) + [0]
    for b in make_loader(ds, 2, seed=0):
        assert b["x"].shape[1] == int(b["lengths"].max())
        assert all(b["x"][i, n - 1].item() == EOS_ID for i, n in enumerate(b["lengths"].tolist()))


def test_unknown_token_ids_are_reported(tmp_path):
    path, vocab = token_file(tmp_path / "t.h5", ["CC", "CO"])
    with h5py.File(path, "a") as f:
        x = f["x"][()]
        x[1, 0] = len(vocab) + 3
        f["x"][...] = x
    with pytest.raises(DataError, match=r"t\.h5:x: 1 unknown token ids .* rows 1"):
        H5Dataset(path)


@pytest.mark.parametrize("mmap", [False, True])
def test_pickle_drops_the_handle(tmp_path, mmap):
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    ds = H5Dataset(write(tmp_path / "p.h5", x=x), in_memory=False, mmap=mmap)
    assert ds.mmap is mmap
    ds.read([1])  # opens this process's handle or memory map
    assert (ds._map if mmap else ds._file) is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None and clone._map is None
    assert torch.equal(clone.read([3, 1])["x"], torch.from_numpy(x[[3, 1]]))
    assert torch.equal(ds.read([3])["x"], torch.from_numpy(x[[3]]))


def test_mmap_needs_contiguous_plain_data(tmp_path):
    path = tmp_path / "chunked.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.ones((64, 4), np.float32), chunks=(8, 4), compression="gzip")
    ds = H5Dataset(path, in_memory=False)
    assert not ds.mmap  # falls back to h5py block reads
    batch = ds.read([60, 5, 60])  # repeated rows are read once and gathered
    assert batch["x"].shape == (3, 4) and batch["index"].tolist() == [60, 5, 60]
    with pytest.raises(DataError, match="cannot be memory-mapped"):
        H5Dataset(path, mmap=True)


def test_construction_leaves_no_open_handle(tmp_path):
    ds = H5Dataset(write(tmp_path / "o.h5", x=np.ones((5, 3), np.float32)), in_memory=False)
    assert ds._file is None


def test_labels_all_and_strings(tmp_path):
    path = write(
        tmp_path / "l.h5",
        x=np.ones((4, 2), np.float32),
        temperature=np.array([1.0, 2.0, 3.0, 4.0]),
        name=np.array([b"b", b"a", b"b", b"c"]),
        other=np.ones(3),
    )
    assert sorted(H5Dataset(path, labels=True).labels) == ["temperature"]  # numbers only
    ds = H5Dataset(path, labels=["temperature", "name"])
    batch = ds.read([0, 1, 3])
    assert batch["labels"]["temperature"].dtype == torch.float32
    assert ds.label_categories["name"] == ["a", "b", "c"]
    assert batch["labels"]["name"].tolist() == [1, 0, 2]


def test_registry_and_open_dataset(tmp_path):
    path = write(tmp_path / "r.h5", x=np.ones((3, 2), np.float32))
    assert registry.datasets.get("h5") is H5Dataset
    assert isinstance(open_dataset(path), H5Dataset)
    assert H5Dataset(path).describe()["rows"] == 3


# ------------------------------------------------------------------ bad input


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and isinstance(exc.value, GenlatentError)
    return message


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as exc:
        H5Dataset(tmp_path / "nope.h5")
    assert "nope.h5: file not found" in one_line(exc)


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("hello\n")
    with pytest.raises(DataError) as exc:
        H5Dataset(path)
    assert "text.h5: not an HDF5 file" in one_line(exc)


def test_truncated_file(tmp_path):
    path = write(tmp_path / "cut.h5", x=np.ones((1000, 50), np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as exc:
        H5Dataset(path)
    assert "cut.h5" in one_line(exc) and "truncated" in one_line(exc)


def test_missing_key_lists_keys(tmp_path):
    path = write(tmp_path / "k.h5", x=np.ones((3, 2), np.float32), y=np.ones(3))
    with pytest.raises(DataError) as exc:
        H5Dataset(path, key="images")
    assert "no dataset 'images'; datasets in the file: x, y" in one_line(exc)
    with pytest.raises(DataError) as exc:
        H5Dataset(path, labels="label")
    assert "no label dataset 'label'" in one_line(exc)


def test_wrong_rank(tmp_path):
    with pytest.raises(DataError) as exc:
        H5Dataset(write(tmp_path / "r1.h5", x=np.ones(5, np.float32)))
    assert "r1.h5:x: shape (5,) has rank 1" in one_line(exc)
    with pytest.raises(DataError, match="rank 5"):
        H5Dataset(write(tmp_path / "r5.h5", x=np.ones((2, 1, 1, 1, 1), np.float32)))
    with pytest.raises(DataError, match="vectors data has shape"):
        H5Dataset(write(tmp_path / "r3.h5", x=np.ones((2, 3, 3), np.float32)), kind="vectors")


def test_non_numeric(tmp_path):
    with pytest.raises(DataError) as exc:
        H5Dataset(write(tmp_path / "s.h5", x=np.array([[b"a", b"b"]])))
    assert "s.h5:x: dtype |S1 is not numeric" in one_line(exc)


def test_nan_and_inf_reported_with_rows(tmp_path):
    x = np.zeros((100, 4), np.float32)
    x[7, 1] = np.nan
    x[42, 0] = np.inf
    x[42, 3] = -np.inf
    path = write(tmp_path / "nan.h5", x=x)
    with pytest.raises(DataError) as exc:
        H5Dataset(path)
    assert "nan.h5:x: 3 NaN/inf values in 2 rows (first rows 7, 42)" in one_line(exc)
    assert len(H5Dataset(path, check=False)) == 100


def test_empty(tmp_path):
    with pytest.raises(DataError) as exc:
        H5Dataset(write(tmp_path / "e.h5", x=np.ones((0, 3), np.float32)))
    assert "e.h5:x: the dataset is empty" in one_line(exc)


def test_labels_of_another_length(tmp_path):
    path = write(tmp_path / "y.h5", x=np.ones((5, 2), np.float32), y=np.arange(4))
    with pytest.raises(DataError) as exc:
        H5Dataset(path, labels="y")
    assert "y.h5:y: labels have 4 rows but 'x' has 5" in one_line(exc)


def test_tokens_need_vocab_and_lengths(tmp_path):
    path, vocab = token_file(tmp_path / "t.h5", ["CC", "CO"])
    with h5py.File(path, "a") as f:
        del f["lengths"]
    with pytest.raises(DataError, match="needs a lengths dataset 'lengths'"):
        H5Dataset(path)
    with pytest.raises(DataError, match="needs a 'vocab' attribute"):
        H5Dataset(write(tmp_path / "nv.h5", x=np.ones((2, 3), np.uint8)), kind="tokens")
    bad = write(tmp_path / "bv.h5", x=np.ones((2, 3), np.uint8), attrs={"vocab": '["a", "b"]'})
    with pytest.raises(DataError, match="must start with <pad> <bos> <eos> <unk>"):
        H5Dataset(bad)
