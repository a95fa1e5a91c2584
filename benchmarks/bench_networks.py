"""Network speed: the GRU encoder's padding-safe paths, and CNN decoder upsampling modes.

1. GRU encoder (unidirectional): reading the output at each sequence's last real token (what
   ``GRUEncoder`` does) against packing the batch with ``pack_padded_sequence`` (what it does
   for bidirectional GRUs). Both give the same codes (checked here); forward + backward time,
   median over interleaved repeats, on MOSES-like batches (lengths 20-48).
2. CNN decoder on 1x28x28: transposed convolutions against nearest-neighbour upsampling plus
   convolution (the circular-padding path), forward + backward.

Ratios against a baseline measured in the same run. Writes its section of BENCHMARKS.md.

    python benchmarks/bench_networks.py [--repeats 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from genlatent.dataspec import EOS_ID, PAD_ID, DataSpec  # noqa: E402
from genlatent.networks import CNNDecoder, GRUEncoder  # noqa: E402


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median ms per call, calls interleaved so that machine load hits all alike."""
    for fn in fns.values():
        fn()  # warm up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def gru_case(batch: int, hidden: int, repeats: int) -> tuple[str, float]:
    vocab = ["<pad>", "<bos>", "<eos>", "<unk>"] + [f"t{i}" for i in range(21)]
    data = DataSpec("tokens", (48,), vocab=tuple(vocab))
    encoder = GRUEncoder(data, 64, embedding_dim=32, hidden_size=hidden)
    lengths = torch.randint(20, 49, (batch,))
    x = torch.randint(4, len(vocab), (batch, 48))
    for i, n in enumerate(lengths):
        x[i, n - 1], x[i, n:] = EOS_ID, PAD_ID

    def packed_codes() -> torch.Tensor:
        emb = encoder.embed(x[:, : int(lengths.max())])
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        _, h = encoder.rnn(packed)
        return encoder.head(h[-1])

    assert torch.allclose(encoder(x, lengths), packed_codes(), atol=1e-5)
    ms = interleaved(
        {
            "last": lambda: encoder(x, lengths).sum().backward(),
            "packed": lambda: packed_codes().sum().backward(),
        },
        repeats,
    )
    ratio = ms["packed"] / ms["last"]
    row = (
        f"| GRU encoder B={batch} H={hidden}: packed vs output at last token | "
        f"{ms['packed']:.1f} | {ms['last']:.1f} | {ratio:.2f} |"
    )
    return row, ratio


def cnn_case(batch: int, repeats: int) -> str:
    data = DataSpec("grids", (1, 28, 28))
    z = torch.randn(batch, 16)
    transpose = CNNDecoder(data, 16, 1)
    nearest = CNNDecoder(data, 16, 1, upsample="nearest")
    ms = interleaved(
        {
            "transpose": lambda: transpose(z).sum().backward(),
            "nearest": lambda: nearest(z).sum().backward(),
        },
        repeats,
    )
    return (
        f"| CNN decoder 1x28x28 B={batch}: transposed conv vs nearest + conv | "
        f"{ms['transpose']:.1f} | {ms['nearest']:.1f} | {ms['transpose'] / ms['nearest']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rows = []
    for batch, hidden in [(32, 96), (128, 256)]:
        row, _ = gru_case(batch, hidden, args.repeats)
        rows.append(row)
    rows.append(cnn_case(64, args.repeats))
    body = "\n".join(
        [
            f"CPU threads: {args.threads}; median of {args.repeats} interleaved forward + "
            "backward passes in ms; ratio = A / B (> 1: B is faster).",
            "",
            "| case: A vs B | A (ms) | B (ms) | A / B |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print(body)
    if not args.no_write:
        write_section("networks", "Networks: GRU encoder padding paths, CNN upsampling", body)


if __name__ == "__main__":
    main()
