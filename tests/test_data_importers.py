"""Importers: NumPy, SMILES CSV/TXT, IDX; round trips through H5Dataset, errors, atomicity."""

from __future__ import annotations

import gzip
import struct

import h5py
import numpy as np
import pytest

from genlatent.data import (
    H5Dataset,
    Vocabulary,
    import_idx,
    import_numpy,
    import_smiles,
    read_idx,
)
from genlatent.errors import DataError

SMILES = ["CCO", "c1ccccc1", "CC(=O)Nc1ccc(O)cc1", "Cl[C@H](Br)F", "C1CC1N", "O=C=O"]


def test_npz_round_trip_shuffled_and_aligned(tmp_path):
    x = np.arange(40, dtype=np.float64).reshape(10, 4)
    y = np.arange(10) * 10
    np.savez(tmp_path / "a.npz", x=x, y=y, meta=np.ones(3))
    out = import_numpy(tmp_path / "a.npz", tmp_path / "a.h5", seed=1)
    with h5py.File(out, locking=False) as f:
        stored_x, stored_y = f["x"][()], f["y"][()]
        assert f["x"].chunks is None and f["x"].compression is None  # contiguous, plain
        assert "meta" not in f and f.attrs["shuffled"]
    assert stored_x.dtype == np.float32
    assert not np.array_equal(stored_y, y)  # pre-shuffled
    np.testing.assert_array_equal(stored_x[:, 0] * 10 / 4, stored_y)  # rows stay aligned
    ds = H5Dataset(out, labels="y")
    batch = ds.read(np.arange(10))
    np.testing.assert_array_equal(np.sort(batch["x"][:, 0].numpy()), x[:, 0])


def test_npy_and_refused_pickles(tmp_path):
    np.save(tmp_path / "p.npy", np.ones((5, 3), np.float32))
    assert H5Dataset(import_numpy(tmp_path / "p.npy", tmp_path / "p.h5")).spec.shape == (3,)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy: cannot load without pickle"):
        import_numpy(tmp_path / "obj.npy", tmp_path / "obj.h5")
    assert not (tmp_path / "obj.h5").exists()
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="junk.npy"):
        import_numpy(tmp_path / "junk.npy", tmp_path / "junk.h5")
    np.savez(tmp_path / "two.npz", a=np.ones((2, 2)), b=np.ones((2, 2)))
    with pytest.raises(DataError, match="several arrays"):
        import_numpy(tmp_path / "two.npz", tmp_path / "two.h5")
    np.savez(tmp_path / "bad.npz", x=np.ones((4, 2)), y=np.ones(3))
    with pytest.raises(DataError, match=r"y: labels have shape \(3,\), expected \(4,\)"):
        import_numpy(tmp_path / "bad.npz", tmp_path / "bad.h5", labels=["y"])
    nan = np.ones((4, 2))
    nan[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(DataError, match="NaN/inf values in 1 rows"):
        import_numpy(tmp_path / "nan.npy", tmp_path / "nan.h5")
    with pytest.raises(DataError, match="file not found"):
        import_numpy(tmp_path / "none.npy", tmp_path / "none.h5")


def test_smiles_csv_round_trip(tmp_path):
    src = tmp_path / "mols.csv"
    src.write_text("SMILES,logp\n" + "".join(f"{s},{i}.5\n" for i, s in enumerate(SMILES)))
    out = import_smiles(src, tmp_path / "mols.h5", labels=["logp"], seed=0)
    ds = H5Dataset(out, labels="logp")
    assert ds.spec.kind == "tokens"
    vocab = Vocabulary(ds.spec.vocab)
    batch = ds.read(np.arange(len(SMILES)))
    with h5py.File(out, locking=False) as f:
        raw = [s.decode() for s in f["smiles"][()]]
        assert f["smiles"].dtype.kind == "S"  # fixed-length bytes, not variable strings
        assert f["x"].dtype == np.uint8
    decoded = [vocab.decode(row) for row in batch["x"].tolist()]
    assert decoded == raw and sorted(raw) == sorted(SMILES)
    assert raw != SMILES  # pre-shuffled
    for s, value in zip(raw, batch["labels"]["logp"].tolist(), strict=True):
        assert value == SMILES.index(s) + 0.5
    from genlatent.data import tokenize_smiles

    longest = max(len(tokenize_smiles(s)) + 1 for s in SMILES)  # <eos> counted
    assert batch["x"].shape[1] == longest == ds.spec.max_length
    assert int(batch["lengths"].max()) == batch["x"].shape[1]


def test_smiles_txt_gz_with_given_vocab(tmp_path):
    src = tmp_path / "mols.txt.gz"
    with gzip.open(src, "wt") as handle:
        handle.write("\n".join(f"{s} name{i}" for i, s in enumerate(SMILES[:2])) + "\n\n")
    train = import_smiles(src, tmp_path / "train.h5", shuffle=False)
    vocab = H5Dataset(train).spec.vocab
    (tmp_path / "test.txt").write_text("CCN\n")
    with pytest.raises(DataError, match=r"test.txt: unknown token 'N'"):
        import_smiles(tmp_path / "test.txt", tmp_path / "test.h5", vocab=vocab)
    out = import_smiles(
        tmp_path / "test.txt", tmp_path / "test.h5", vocab=vocab, allow_unknown=True
    )
    assert H5Dataset(out).read([0])["x"][0].tolist() == [vocab.index("C"), vocab.index("C"), 3, 2]
    (tmp_path / "bad.txt").write_text("CC\nC\xe9C\n")
    with pytest.raises(DataError, match="bad.txt: row 2: cannot tokenize"):
        import_smiles(tmp_path / "bad.txt", tmp_path / "bad.h5")


def write_idx(path, array, gz=False):
    codes = {np.dtype("u1"): 0x08, np.dtype(">i4"): 0x0C}
    array = np.asarray(array)
    dtype = np.dtype("u1") if array.dtype == np.uint8 else np.dtype(">i4")
    head = bytes([0, 0, codes[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = head + array.astype(dtype).tobytes()
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 5, 4), dtype=np.uint8)
    labels = (np.arange(30) % 10).astype(np.uint8)
    write_idx(tmp_path / "img.idx", images, gz)
    write_idx(tmp_path / "lab.idx", labels, gz)
    assert np.array_equal(read_idx(tmp_path / "img.idx"), images)
    out = import_idx(
        tmp_path / "img.idx",
        tmp_path / "img.h5",
        labels=tmp_path / "lab.idx",
        label_names=[f"class{i}" for i in range(10)],
    )
    ds = H5Dataset(out, labels="y")
    assert ds.spec.kind == "grids" and ds.spec.shape == (1, 5, 4)
    assert ds.label_categories["y"][3] == "class3"
    batch = ds.read(np.arange(30))
    with h5py.File(out, locking=False) as f:
        assert f["x"].dtype == np.uint8 and f["x"].shape == (30, 1, 5, 4)
    # each stored image still carries its own label, now scaled to [0, 1]
    for img, y in zip(batch["x"].numpy(), batch["labels"]["y"].numpy(), strict=True):
        matches = [i for i in range(30) if np.allclose(img[0], images[i] / 255.0)]
        assert len(matches) == 1 and labels[matches[0]] == y


def test_idx_errors(tmp_path):
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="bad.idx: not an IDX file"):
        read_idx(tmp_path / "bad.idx")
    path = write_idx(tmp_path / "cut.idx", np.ones((4, 3, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
    write_idx(tmp_path / "img.idx", np.ones((4, 3, 3), np.uint8))
    write_idx(tmp_path / "lab.idx", np.ones(3, np.uint8))
    with pytest.raises(DataError, match="3 labels for 4 images"):
        import_idx(tmp_path / "img.idx", tmp_path / "o.h5", labels=tmp_path / "lab.idx")
    assert not (tmp_path / "o.h5").exists()
