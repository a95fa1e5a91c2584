"""Loader throughput: the naive per-item DataLoader against genlatent's block-shuffle loader.

A 60000 x 784 float32 file (Fashion-MNIST sized, random values, contiguous and uncompressed)
is written to a temp folder and read once to be in the page cache. Then, in one run:

- naive: a map-style Dataset whose ``__getitem__`` reads one row through h5py, under
  ``DataLoader(shuffle=True, batch_size=B)`` (what most HDF5 training scripts do);
- ours, streaming: ``make_loader(H5Dataset(..., in_memory=False), B)``: blocks shuffled, rows
  shuffled within fetches, each fetch one gather from the memory-mapped file (the default for
  contiguous uncompressed data);
- ours, streaming with ``mmap=False``: the same plan, one h5py slice read per block;
- ours, in memory: the same with ``in_memory=True`` (the default for data this small).

Each figure is the median of several full passes (the naive one of passes over a part of the
epoch, it is slow). Targets (issue 5): streaming >= 40x naive and >= 1M samples/s.

    python benchmarks/bench_loader.py [--repeats 5] [--batch-size 128] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from genlatent.data import H5Dataset, make_loader  # noqa: E402

ROWS, COLS = 60000, 784


class NaiveH5(torch.utils.data.Dataset):
    """The usual per-item HDF5 dataset (file opened lazily per process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = None

    def __len__(self) -> int:
        return ROWS

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.file is None:
            self.file = h5py.File(self.path, "r", locking=False)
        return torch.from_numpy(self.file["x"][i])


def rate(batches, limit: int | None = None) -> tuple[float, float]:
    """Samples per wall-clock second and per CPU second of this process over one pass (or its
    first ``limit`` batches). The CPU rate is steadier on a machine shared with other jobs."""
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    for k, batch in enumerate(batches):
        x = batch["x"] if isinstance(batch, dict) else batch
        n += x.shape[0]
        if limit is not None and k + 1 >= limit:
            break
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--naive-batches", type=int, default=80, help="batches per naive pass")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)
    bs = args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        x = np.random.default_rng(0).random((ROWS, COLS), dtype=np.float32)
        with h5py.File(path, "w") as f:
            f["x"] = x
        del x
        with h5py.File(path, "r", locking=False) as f:
            f["x"][()]  # into the page cache

        naive = torch.utils.data.DataLoader(NaiveH5(path), batch_size=bs, shuffle=True)
        streaming = make_loader(H5Dataset(path, in_memory=False), bs, seed=0)
        h5py_reads = make_loader(H5Dataset(path, in_memory=False, mmap=False), bs, seed=0)
        memory = make_loader(H5Dataset(path, in_memory=True), bs, seed=0)
        rate(memory)  # load once, outside the timing
        rate(streaming, 10)
        results: dict[str, list[tuple[float, float]]] = {
            "naive": [],
            "streaming": [],
            "h5py_reads": [],
            "in_memory": [],
        }
        for epoch in range(args.repeats):
            results["naive"].append(rate(naive, args.naive_batches))
            streaming.set_epoch(epoch)
            results["streaming"].append(rate(streaming))
            h5py_reads.set_epoch(epoch)
            results["h5py_reads"].append(rate(h5py_reads))
            memory.set_epoch(epoch)
            results["in_memory"].append(rate(memory))
            print(
                f"repeat {epoch}: "
                + ", ".join(f"{k} {v[-1][0] / 1e3:,.0f}k/s" for k, v in results.items()),
                flush=True,
            )
        streaming.dataset.close()
        h5py_reads.dataset.close()

    wall = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    cpu = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
    ratio = wall["streaming"] / wall["naive"]
    ok_ratio, ok_rate = ratio >= 40, wall["streaming"] >= 1e6
    names = {
        "naive": "naive per-item `Dataset` + `DataLoader(shuffle=True)`",
        "streaming": "genlatent `make_loader`, streaming (`in_memory=False`, default mmap)",
        "h5py_reads": "genlatent `make_loader`, streaming, one h5py read per block (`mmap=False`)",
        "in_memory": "genlatent `make_loader`, in memory",
    }
    table = (
        "| loader | samples/s (median) | x naive | samples per CPU-second | x naive |\n"
        "|---|---:|---:|---:|---:|\n"
    ) + "\n".join(
        f"| {names[k]} | {wall[k]:,.0f} | {wall[k] / wall['naive']:.1f} | {cpu[k]:,.0f} | "
        f"{cpu[k] / cpu['naive']:.1f} |"
        for k in names
    )
    load = os.getloadavg()[0]
    body = (
        f"{ROWS} x {COLS} float32 file in the page cache, batch size {bs}, defaults "
        f"block_size=128, fetch_factor=16, num_workers=0; medians of {args.repeats} passes "
        f"(naive: {args.naive_batches} batches per pass); load average at the end "
        f"{load:.1f} on {os.cpu_count()} cores.\n\n{table}\n\n"
        f"Targets: streaming >= 40x naive: {'met' if ok_ratio else 'NOT met'} ({ratio:.0f}x); "
        f"streaming >= 1M samples/s: {'met' if ok_rate else 'NOT met'} "
        f"({wall['streaming'] / 1e6:.2f}M/s wall-clock, {cpu['streaming'] / 1e6:.2f}M per "
        f"CPU-second). On a machine shared with other jobs the ratios and the per-CPU-second "
        f"rates are steadier than wall-clock rates."
    )
    print(body)
    if not args.no_write:
        write_section("loader", "HDF5 loader throughput (bench_loader.py)", body)


if __name__ == "__main__":
    main()
