"""Block-shuffle sampler and loader: coverage, order, sharding, workers, resume."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from genlatent.data import BlockShuffleSampler, H5Dataset, make_loader
from genlatent.errors import DataError

N, D = 1000, 6


@pytest.fixture()
def h5file(tmp_path):
    path = tmp_path / "d.h5"
    x = np.arange(N * D, dtype=np.float32).reshape(N, D)  # row i holds i*D .. i*D+D-1
    with h5py.File(path, "w") as f:
        f["x"] = x
        f["y"] = np.arange(N) % 7
    return path


def rows_of(loader, epoch=None):
    if epoch is not None:
        loader.set_epoch(epoch)
    return np.concatenate([b["index"].numpy() for b in loader])


@pytest.mark.parametrize("mode", ["memory", "mmap", "h5py"])
def test_every_row_once_and_values_match(h5file, mode):
    ds = H5Dataset(h5file, labels="y", in_memory=mode == "memory", mmap=mode == "mmap")
    loader = make_loader(ds, 32, seed=3, block_size=16, fetch_factor=4)
    seen = []
    for batch in loader:
        index = batch["index"].numpy()
        expected = np.arange(D, dtype=np.float32)[None, :] + D * index[:, None]
        np.testing.assert_array_equal(batch["x"].numpy(), expected)
        np.testing.assert_array_equal(batch["labels"]["y"].numpy(), index % 7)
        assert batch["x"].dtype == torch.float32 and batch["labels"]["y"].dtype == torch.int64
        seen.append(index)
    seen = np.concatenate(seen)
    assert len(loader) == 32 == int(np.ceil(N / 32))
    assert np.array_equal(np.sort(seen), np.arange(N))


def test_order_changes_per_epoch_and_repeats_per_seed(h5file):
    ds = H5Dataset(h5file)
    a = make_loader(ds, 50, seed=1)
    b = make_loader(ds, 50, seed=1)
    c = make_loader(ds, 50, seed=2)
    e0, e1 = rows_of(a, 0), rows_of(a, 1)
    assert not np.array_equal(e0, e1)
    assert np.array_equal(e0, rows_of(b, 0)) and np.array_equal(e1, rows_of(b, 1))
    assert not np.array_equal(e0, rows_of(c, 0))
    # shuffled well beyond block level: neighbours in a batch mostly come from other blocks
    first = e0[:50]
    assert len(set((first // 64).tolist())) >= 8


def test_no_shuffle_is_sequential(h5file):
    loader = make_loader(H5Dataset(h5file), 64, shuffle=False)
    assert np.array_equal(rows_of(loader, 5), np.arange(N))


@pytest.mark.parametrize("drop_last", [False, True])
def test_two_ranks_disjoint_complete_equal(h5file, drop_last):
    ds = H5Dataset(h5file)
    shards = []
    lengths = []
    for rank in range(2):
        loader = make_loader(ds, 64, seed=5, rank=rank, world_size=2, drop_last=drop_last)
        loader.set_epoch(2)
        batches = [b["index"].numpy() for b in loader]
        lengths.append(len(batches))
        assert len(batches) == len(loader)
        if drop_last:
            assert all(len(b) == 64 for b in batches)
        shards.append(np.concatenate(batches))
    assert lengths[0] == lengths[1]
    a, b = shards
    if drop_last:
        assert len(a) == len(b) == 448
        assert not set(a) & set(b)
        assert len(set(a) | set(b)) == 896
    else:  # 1000 rows split evenly: disjoint and together complete
        assert len(a) == len(b) == 500
        assert not set(a) & set(b)
        assert set(a) | set(b) == set(range(N))


def test_padding_when_rows_do_not_split_evenly():
    s = [BlockShuffleSampler(7, 2, rank=r, world_size=3, seed=0) for r in range(3)]
    shards = [np.concatenate(list(x)) for x in s]
    assert [len(x) for x in shards] == [3, 3, 3]
    together = np.concatenate(shards)
    assert set(together.tolist()) == set(range(7))  # complete, 2 rows repeated as padding
    assert len(together) == 9


@pytest.mark.parametrize("mmap", [False, True])
def test_workers_give_the_same_batches(h5file, mmap):
    ds = H5Dataset(h5file, labels="y", in_memory=False, mmap=mmap)
    plain = make_loader(ds, 40, seed=9, block_size=8, fetch_factor=2)
    workers = make_loader(ds, 40, seed=9, block_size=8, fetch_factor=2, num_workers=2)
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        workers.set_epoch(epoch)
        got = list(workers)
        want = list(plain)
        assert len(got) == len(want) == len(workers)
        for g, w in zip(got, want, strict=True):
            assert torch.equal(g["index"], w["index"])
            assert torch.equal(g["x"], w["x"])
            assert torch.equal(g["labels"]["y"], w["labels"]["y"])


def test_resume_mid_epoch_matches_uninterrupted(h5file):
    ds = H5Dataset(h5file)
    full = make_loader(ds, 32, seed=4, block_size=16, fetch_factor=3)
    full.set_epoch(1)
    reference = [b["index"] for b in full]

    first = make_loader(ds, 32, seed=4, block_size=16, fetch_factor=3)
    first.set_epoch(1)
    taken = []
    for k, batch in enumerate(first):
        taken.append(batch["index"])
        if k == 10:
            break
    state = first.state_dict()
    assert state["epoch"] == 1 and state["batch"] == 11

    resumed = make_loader(ds, 32, seed=4, block_size=16, fetch_factor=3)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)  # the trainer's usual loop; the pending resume survives it
    rest = [b["index"] for b in resumed]
    assert len(taken) + len(rest) == len(reference)
    for got, want in zip(taken + rest, reference, strict=True):
        assert torch.equal(got, want)
    # the next epoch starts from its first batch again
    resumed.set_epoch(2)
    assert sum(1 for _ in resumed) == len(resumed)
    assert resumed.state_dict()["epoch"] == 3 and resumed.state_dict()["batch"] == 0

    direct = [
        b["index"]
        for b in make_loader(ds, 32, seed=4, block_size=16, fetch_factor=3).iter_from(1, 11)
    ]
    assert all(torch.equal(g, w) for g, w in zip(direct, reference[11:], strict=True))


def test_resume_at_the_end_yields_nothing(h5file):
    loader = make_loader(H5Dataset(h5file), 30, block_size=16, fetch_factor=4)
    assert len(loader) == 34  # not a multiple of fetch_factor
    assert list(loader.iter_from(0, 34)) == []
    assert len(list(loader.iter_from(0, 33))) == 1


def test_resume_with_other_settings_is_refused(h5file):
    ds = H5Dataset(h5file)
    state = make_loader(ds, 32, seed=4).state_dict()
    with pytest.raises(DataError, match="batch_size"):
        make_loader(ds, 16, seed=4).load_state_dict(state)


def test_bad_loader_options(h5file):
    ds = H5Dataset(h5file)
    with pytest.raises(DataError, match="batch_size"):
        make_loader(ds, 0)
    with pytest.raises(DataError, match="rank"):
        make_loader(ds, 8, rank=2, world_size=2)
    with pytest.raises(DataError, match="drop_last"):
        make_loader(ds, 600, world_size=2, rank=0, drop_last=True)


def test_sampler_as_torch_batch_sampler(h5file):
    ds = H5Dataset(h5file)
    sampler = BlockShuffleSampler(len(ds), 100, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=lambda items: items)
    count = sum(len(items) for items in loader)
    assert count == N


def test_split_and_subset(h5file):
    ds = H5Dataset(h5file, labels="y")
    train, val = ds.split(0.1)
    assert len(train) == 900 and len(val) == 100
    batch = val.read([0, 99])
    assert batch["index"].tolist() == [900, 999]
    assert batch["x"][1, 0].item() == 999 * D
    seen = rows_of(make_loader(val, 16, seed=0), 0)
    assert np.array_equal(np.sort(seen), np.arange(900, 1000))
