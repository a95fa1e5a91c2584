"""Network speed: the GRU encoder's padding-safe paths, and CNN decoder upsampling modes.

1. GRU encoder (unidirectional): reading the output at each sequence's last real token (what
   ``GRUEncoder`` does) against packing the batch with ``pack_padded_sequence`` (what it does
   for bidirectional GRUs). Both give the same codes (checked here); forward + backward time,
   median over interleaved repeats, on MOSES-like batches (lengths 20-48).
2. CNN decoder on 1x28x28: transposed convolutions against nearest-neighbour upsampling plus
   convolution, forward + backward.

Ratios against a baseline measured in the same run. Writes its section of BENCHMARKS.md.

    python benchmarks/bench_networks.py [--repeats 30] [--threads 1]

``--variants`` instead trains CNN VAE variants (how the defaults of ``networks/cnn.py`` were
chosen) and writes the section ``cnn_variants``: each variant is a fresh ``genlatent.build``
model (latent 20, channels [32, 64], Bernoulli) trained by the same minimal loop (batch 128,
fused Adam 1e-3, one thread) on statically binarised Fashion-MNIST (``--fashion-train``
images, pixel ~ Bernoulli(intensity), numpy seed 0) and on 2-D Ising configurations
(``--ising FILE`` from ``datasets/ising.py``, circular padding, its last 2000 rows held out).
Variants alternate within each round, order flipped every round; speed is training samples
per second (wall and per CPU second, median over rounds), quality the held-out ELBO (one
posterior draw, mean nats, mean over rounds). The classic hand-written CNN VAE (4x4 stride-2
convolutions, transposed-conv decoder ending in one channel; ``bench_trainer.HandVAE``)
runs beside them on Fashion-MNIST.

    python benchmarks/bench_networks.py --variants --ising data/ising_L32.h5 [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
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


# --------------------------------------------------------------------------- CNN VAE variants

VARIANTS = {  # name -> CNN params for both encoder and decoder (channels [32, 64] throughout)
    "light (default)": {},
    "light, kernel 3": {"kernel": 3},
    "light, wrapped transposed conv": {"upsample": "transpose"},
    "heavy (old default)": {"style": "heavy"},
}
ON = {  # the variants each dataset trains (the CPU budget of a shared 2-core machine)
    "Fashion-MNIST": ["light (default)", "light, kernel 3", "heavy (old default)"],
    "Ising": ["light (default)", "light, wrapped transposed conv", "heavy (old default)"],
}


def binarised_fashion(n_train: int, n_test: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images as {0, 1} floats (N, 1, 28, 28), binarised once with seed 0."""
    from bench_trainer import IDX_DIR

    from genlatent.data.importers import read_idx

    rng = np.random.default_rng(0)
    out = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        path = IDX_DIR / f"{prefix}-images-idx3-ubyte.gz"
        if not path.exists():
            sys.exit(f"{path} missing: apt-get install dataset-fashion-mnist")
        images = read_idx(path)[:n].astype(np.float32) / 255.0
        out.append(torch.from_numpy((rng.random(images.shape) < images).astype(np.float32)))
    return out[0].unsqueeze(1), out[1].unsqueeze(1)


def ising_split(path: Path, n_test: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Spins as {0, 1} floats (N, 1, L, L); the file's rows are pre-shuffled."""
    import h5py

    with h5py.File(path, "r") as f:
        x = torch.from_numpy(f["x"][:].astype(np.float32))
    return x[:-n_test], x[-n_test:]


def variants_case(args: argparse.Namespace) -> str:
    """Train every variant on each dataset in interleaved rounds; a markdown table."""
    from bench_trainer import HandVAE

    import genlatent

    torch.distributions.Distribution.set_default_validate_args(False)  # as Trainer.fit does
    datasets = {"Fashion-MNIST": (*binarised_fashion(args.fashion_train, 10000), "zeros")}
    if args.ising:
        ising_train, ising_test = ising_split(args.ising)
        datasets["Ising"] = (ising_train[: args.ising_train], ising_test, "circular")

    def train(loss_fn, params, x: torch.Tensor, seed: int) -> tuple[float, float]:
        opt = torch.optim.Adam(params, lr=1e-3, fused=True)
        gen = torch.Generator().manual_seed(seed)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.epochs):
            perm = torch.randperm(x.shape[0], generator=gen)
            for i in range(0, x.shape[0], 128):
                loss = loss_fn(x[perm[i : i + 128]])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return time.perf_counter() - start, time.process_time() - cpu

    @torch.no_grad()
    def held_out_elbo(neg_elbo, x: torch.Tensor) -> float:
        torch.manual_seed(1234)
        return -sum(float(neg_elbo(x[i : i + 1000]).sum()) for i in range(0, len(x), 1000)) / len(
            x
        )

    def run(name: str, x: torch.Tensor, x_test: torch.Tensor, padding: str, seed: int):
        torch.manual_seed(seed)
        if name == "hand-written classic":
            net = HandVAE(cnn=True)
            seconds = train(lambda b: net.neg_elbo(b.flatten(1)).mean(), net.parameters(), x, seed)
            return seconds, held_out_elbo(lambda b: net.neg_elbo(b.flatten(1)), x_test), net
        params = {"channels": [32, 64], "padding_mode": padding, **VARIANTS[name]}
        enc = {k: v for k, v in params.items() if k != "upsample"}
        spec = {
            "data": {"kind": "grids", "shape": list(x.shape[1:])},
            "latent_dim": 20,
            "encoder": {"name": "cnn", "params": enc},
            "decoder": {"name": "cnn", "params": params},
            "likelihood": "bernoulli",
        }
        model = genlatent.build(spec, seed=seed)
        seconds = train(lambda b: model.loss({"x": b})[0], model.parameters(), x, seed)
        return seconds, held_out_elbo(lambda b: model.elbo(b)["neg_elbo"], x_test), model

    rows = []
    for label, (x, x_test, padding) in datasets.items():
        names = ON[label] + (["hand-written classic"] if padding == "zeros" else [])
        for name in names:  # warm-up
            run(name, x[:256], x_test[:200], padding, 0)
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        elbo: dict[str, list[float]] = {n: [] for n in names}
        size = 0
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                (w, c), e, net = run(name, x, x_test, padding, r)
                size = sum(p.numel() for p in net.parameters())
                n = x.shape[0] * args.epochs
                wall[name].append(n / w)
                cpu[name].append(n / c)
                elbo[name].append(e)
                print(f"{label} round {r + 1} {name:>24}: {n / w:6.0f} samples/s "
                      f"({n / c:.0f} per CPU s), held-out ELBO {e:.2f}, {size} weights",
                      flush=True)
        ref = statistics.median(cpu[names[0]])
        for name in names:
            rows.append(
                f"| {label} | {name} | {statistics.median(wall[name]):.0f} | "
                f"{statistics.median(cpu[name]):.0f} | {statistics.median(cpu[name]) / ref:.2f} | "
                f"{statistics.mean(elbo[name]):.2f} |"
            )
    f_train = args.fashion_train
    return "\n".join(
        [
            f"CNN VAE variants, latent 20, channels [32, 64], Bernoulli, batch 128, fused Adam "
            f"1e-3, {args.epochs} epoch(s) per round, {args.rounds} interleaved rounds, "
            f"{args.threads} thread(s). Data: binarised Fashion-MNIST ({f_train} train / 10000 "
            f"held out); Ising {args.ising} ({args.ising_train} train, last 2000 rows held out, "
            "circular padding). "
            "x default: samples per CPU second relative to the default network, same run.",
            "",
            "| data | variant | samples/s (median) | per CPU second (median) | x default "
            "| held-out ELBO (nats, mean) |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--variants", action="store_true", help="train the CNN VAE variants")
    parser.add_argument("--rounds", type=int, default=3, help="--variants: rounds")
    parser.add_argument("--epochs", type=int, default=1, help="--variants: epochs per round")
    parser.add_argument("--fashion-train", type=int, default=10000,
                        help="--variants: Fashion-MNIST training images")
    parser.add_argument("--ising", type=Path, default=None,
                        help="--variants: Ising HDF5 file (datasets/ising.py)")
    parser.add_argument("--ising-train", type=int, default=6000,
                        help="--variants: Ising training configurations")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    if args.variants:
        body = variants_case(args)
        print(body)
        if not args.no_write:
            write_section("cnn_variants", "CNN VAE variants: speed and held-out ELBO", body)
        return
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
