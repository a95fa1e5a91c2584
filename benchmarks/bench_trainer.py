"""Trainer overhead: genlatent's Trainer against a minimal hand-written PyTorch loop.

The reference VAE (MLP 784-400-20, Bernoulli likelihood, batch 128, Adam 1e-3) on
Fashion-MNIST (60000 training images, flattened to 784 values in [0, 1], from HDF5):

- **hand**: a hand-written VAE (``nn.Linear`` layers, ``exp(logvar / 2)`` scale, closed-form
  KL) and the textbook loop (``randperm`` per epoch, index the tensor, zero_grad / backward /
  step), on the decoded training tensor in memory;
- **genlatent**: ``genlatent.build`` + ``Trainer.fit`` on the ``H5Dataset`` of the same file,
  with its defaults: block-shuffled loader, on-device metrics, non-finite checks, an epoch-end
  checkpoint, metrics.jsonl and the final ``model.save``: everything a run does;
- **hand + genlatent model** (skip with ``--no-model-loop``): the hand loop driving
  genlatent's model with the Trainer's optimiser (fused Adam) and distribution argument
  checks off, as in ``fit``: the Trainer's own overhead is genlatent / this;
- **hand, fused Adam** (skip with ``--no-fused-hand``): the hand loop with
  ``torch.optim.Adam(fused=True)``, which the Trainer uses by default (same arithmetic, one
  kernel, ~5x faster optimiser step on CPU), to show where the Trainer's gain comes from.

Contestants alternate within each round (the order flips every round); each round trains
fresh models for ``--epochs`` epochs. Speed is training samples per second of wall time,
setup excluded for both (genlatent's includes everything ``fit`` does, checkpoints and
saving included); the ratio is taken per round and its median reported. Quality: the test
ELBO (10000 test images, one posterior draw per image, mean nats) after the last epoch.

The data: ``--data DIR`` holding ``fashion_train.h5`` / ``fashion_test.h5`` (``x``: N x 784
uint8 with ``scale = 1/255``); when missing they are made from the IDX files of the Debian
package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).

``--cnn``: the convolutional VAE instead: **hand** is the classic CNN VAE (4x4 stride-2
convolutions 1-32-64, a dense layer to the posterior; a transposed-conv decoder ending in one
channel), **genlatent** its default ``cnn`` encoder and decoder with ``channels=[32, 64]``
and nothing else set (``docs/networks.md`` says how those defaults were chosen).

Run: ``python benchmarks/bench_trainer.py [--rounds 5 --epochs 1 --threads 1]``;
on a GPU: ``--device cuda`` (and ``--cnn`` for the convolutional VAE).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_section  # noqa: E402

import genlatent  # noqa: E402
from genlatent.data.importers import read_idx, write_h5  # noqa: E402

IDX_DIR = Path("/usr/share/datasets/fashion-mnist")
BATCH, LR, HIDDEN, LATENT = 128, 1e-3, 400, 20


# --------------------------------------------------------------------------- data


def ensure_data(folder: Path, grids: bool = False) -> tuple[Path, Path]:
    """Fashion-MNIST train/test HDF5 files (N x 784 vectors, or N x 28 x 28 grids), made from
    the IDX files if missing."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        path = folder / f"fashion_{split}{'_grids' if grids else ''}.h5"
        if not path.exists():
            images = IDX_DIR / f"{prefix}-images-idx3-ubyte.gz"
            if not images.exists():
                sys.exit(f"{images} missing: apt-get install dataset-fashion-mnist, or --data")
            x = read_idx(images)
            attrs = {"kind": "grids", "layout": "HW"} if grids else {"kind": "vectors"}
            x = x if grids else x.reshape(-1, 28 * 28)
            write_h5(path, x, attrs={**attrs, "scale": 1.0 / 255.0}, shuffle=False)
        out.append(path)
    return out[0], out[1]


# --------------------------------------------------------------------------- the hand loop


class HandVAE(nn.Module):
    """The textbook VAE, written out."""

    def __init__(self, cnn: bool = False) -> None:
        super().__init__()
        self.cnn = cnn
        if cnn:
            self.enc = nn.Sequential(
                nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                nn.Flatten(), nn.Linear(64 * 7 * 7, 2 * LATENT),
            )
            self.dec = nn.Sequential(
                nn.Linear(LATENT, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1),
            )
        else:
            self.enc = nn.Sequential(
                nn.Linear(784, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * LATENT)
            )
            self.dec = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 784))

    def neg_elbo(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example negative ELBO (nats)."""
        inp = x.view(-1, 1, 28, 28) if self.cnn else x
        mu, logvar = self.enc(inp).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        logits = self.dec(z).reshape(x.shape[0], -1)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        return rec + kl


def hand_loop(loss_fn, params, x: torch.Tensor, epochs: int, fused: bool = False
              ) -> tuple[float, float]:
    """The minimal loop; returns training seconds (wall, process CPU)."""
    opt = torch.optim.Adam(params, lr=LR, fused=True) if fused else torch.optim.Adam(params, lr=LR)
    n = x.shape[0]
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        perm = torch.randperm(n, device=x.device)
        for i in range(0, n, BATCH):
            loss = loss_fn(x[perm[i : i + BATCH]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu


# --------------------------------------------------------------------------- genlatent


def genlatent_spec(cnn: bool) -> dict:
    if cnn:
        return {
            "data": {"kind": "grids", "shape": [1, 28, 28]}, "latent_dim": LATENT,
            "encoder": {"name": "cnn", "params": {"channels": [32, 64]}},
            "decoder": {"name": "cnn", "params": {"channels": [32, 64]}},
            "likelihood": "bernoulli",
        }
    return {
        "data": {"kind": "vectors", "shape": [784]}, "latent_dim": LATENT,
        "encoder": {"name": "mlp", "params": {"hidden": [HIDDEN]}},
        "decoder": {"name": "mlp", "params": {"hidden": [HIDDEN]}},
        "likelihood": "bernoulli",
    }


def genlatent_run(train: genlatent.H5Dataset, epochs: int, device: str, cnn: bool,
                  out: Path) -> tuple[torch.nn.Module, tuple[float, float]]:
    model = genlatent.build(genlatent_spec(cnn))
    trainer = genlatent.Trainer(epochs=epochs, batch_size=BATCH, lr=LR, device=device,
                                out_dir=out, overwrite=True, progress=False)
    start, cpu = time.perf_counter(), time.process_time()
    trainer.fit(model, train)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return model, (time.perf_counter() - start, time.process_time() - cpu)


@torch.no_grad()
def test_elbo(neg_elbo, x: torch.Tensor) -> float:
    """Mean test ELBO (nats), one posterior draw per image, fixed seed."""
    torch.manual_seed(1234)
    total = sum(float(neg_elbo(x[i : i + 1000]).sum()) for i in range(0, x.shape[0], 1000))
    return -total / x.shape[0]


def genlatent_neg_elbo(model, cnn: bool):
    def fn(x: torch.Tensor) -> torch.Tensor:
        inp = x.view(-1, 1, 28, 28) if cnn else x
        return model.elbo(inp)["neg_elbo"]

    return fn


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cnn", action="store_true", help="the convolutional VAE")
    parser.add_argument("--no-model-loop", dest="model_loop", action="store_false",
                        help="skip the hand loop driving genlatent's model")
    parser.add_argument("--no-fused-hand", dest="fused_hand", action="store_false",
                        help="skip the hand loop with fused Adam")
    parser.add_argument("--limit", type=int, default=None, help="use the first N training rows")
    parser.add_argument("--data", type=Path,
                        default=Path(tempfile.gettempdir()) / "genlatent-fashion")
    parser.add_argument("--no-report", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = args.device

    train_path, test_path = ensure_data(args.data, grids=args.cnn)
    train = genlatent.H5Dataset(train_path, "x", device=device if device != "cpu" else None)
    if args.limit:
        train = train.subset(0, args.limit)
    # the same decoded values for the hand loop, flattened (HandVAE reshapes for its CNN)
    x_train = train.read(slice(None))["x"].reshape(len(train), -1).to(device)
    x_test = genlatent.H5Dataset(test_path, "x").read(slice(None))["x"]
    x_test = x_test.reshape(x_test.shape[0], -1).to(device)
    n = x_train.shape[0]
    print(f"data: {n} x 784 train, {x_test.shape[0]} test; device {device}; "
          f"{args.threads} thread(s); {args.epochs} epoch(s) x {args.rounds} round(s)")

    names = ["hand", "genlatent"] + (["model"] if args.model_loop else []) + (
        ["fused"] if args.fused_hand else [])
    results: dict[str, list[float]] = {name: [] for name in names}
    cpu_rates: dict[str, list[float]] = {name: [] for name in names}
    elbos: dict[str, list[float]] = {name: [] for name in names}
    shape = (-1, 1, 28, 28) if args.cnn else (-1, 784)

    def contestant(name: str, x: torch.Tensor, epochs: int, out: Path
                   ) -> tuple[tuple[float, float], float]:
        """((wall, CPU) training seconds, test ELBO) of one fresh model."""
        if name in ("hand", "fused"):
            net = HandVAE(args.cnn).to(device)
            seconds = hand_loop(lambda b: net.neg_elbo(b).mean(), net.parameters(), x, epochs,
                                fused=name == "fused")
            return seconds, test_elbo(net.neg_elbo, x_test)
        if name == "model":  # as the Trainer runs it: distribution argument checks off
            model = genlatent.build(genlatent_spec(args.cnn)).to(device)
            validate = torch.distributions.Distribution._validate_args
            torch.distributions.Distribution.set_default_validate_args(False)
            try:
                seconds = hand_loop(lambda b: model.loss({"x": b.view(shape)}, None)[0],
                                    model.parameters(), x, epochs, fused=True)
            finally:
                torch.distributions.Distribution.set_default_validate_args(validate)
        else:
            data = train if x is x_train else train.subset(0, x.shape[0])
            model, seconds = genlatent_run(data, epochs, device, args.cnn, out)
        return seconds, test_elbo(genlatent_neg_elbo(model, args.cnn), x_test)

    with tempfile.TemporaryDirectory() as tmp:
        for name in names:  # warm-up: allocator, kernels, page cache
            contestant(name, x_train[: 10 * BATCH], 1, Path(tmp) / "warmup")
        for r in range(args.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                torch.manual_seed(r)
                (wall, cpu), elbo = contestant(name, x_train, args.epochs,
                                               Path(tmp) / f"run{r}")
                rate = n * args.epochs / wall
                results[name].append(rate)
                cpu_rates[name].append(n * args.epochs / cpu)
                elbos[name].append(elbo)
                print(f"round {r + 1} {name:>9}: {rate:8.0f} samples/s "
                      f"({cpu_rates[name][-1]:.0f} per CPU second)  test ELBO {elbo:.2f}",
                      flush=True)

    ratios = [g / h for g, h in zip(results["genlatent"], results["hand"], strict=True)]
    cpu_ratios = [g / h for g, h in zip(cpu_rates["genlatent"], cpu_rates["hand"], strict=True)]
    lines = [
        f"Reference VAE ({'CNN' if args.cnn else 'MLP 784-400-20'}, Bernoulli, batch {BATCH}, "
        f"Adam {LR:g}) on Fashion-MNIST from HDF5 ({n} training images), {args.epochs} "
        f"epoch(s) per round, {args.rounds} interleaved rounds, device `{device}`, "
        f"{args.threads} torch thread(s).",
        "",
        "| loop | samples/s (median) | samples per CPU second (median) "
        "| test ELBO (mean over rounds, nats) |",
        "|---|---|---|---|",
    ]
    labels = {"hand": "hand-written PyTorch loop (torch.optim.Adam defaults)",
              "genlatent": "genlatent Trainer.fit",
              "model": "hand loop + genlatent model (fused Adam, as the Trainer)",
              "fused": "hand-written loop with fused Adam"}
    for name in names:
        lines.append(f"| {labels[name]} | {statistics.median(results[name]):.0f} | "
                     f"{statistics.median(cpu_rates[name]):.0f} | "
                     f"{statistics.mean(elbos[name]):.2f} |")
    lines += ["", f"**genlatent / hand-written samples/s: {statistics.median(ratios):.3f}x** "
              f"(median of per-round ratios {', '.join(f'{q:.3f}' for q in ratios)}; "
              "goal >= 0.95x on CPU); "
              f"per CPU second: {statistics.median(cpu_ratios):.3f}x "
              "(CPU time is less disturbed by other processes on a shared machine)."]
    if args.model_loop:
        m = [g / h for g, h in zip(results["genlatent"], results["model"], strict=True)]
        mc = [g / h for g, h in zip(cpu_rates["genlatent"], cpu_rates["model"], strict=True)]
        lines.append(f"Trainer alone (Trainer.fit / hand loop on the same genlatent model): "
                     f"{statistics.median(m):.3f}x wall, {statistics.median(mc):.3f}x CPU.")
    if args.fused_hand:
        f = [g / h for g, h in zip(cpu_rates["genlatent"], cpu_rates["fused"], strict=True)]
        lines.append(f"Against the hand-written loop with fused Adam too: "
                     f"{statistics.median(f):.3f}x per CPU second (the Trainer picks torch's "
                     "fused Adam kernel; the rest is the model's own cost).")
    spread = statistics.pstdev(elbos["hand"]) if len(elbos["hand"]) > 1 else float("nan")
    lines.append(f"Test ELBO difference genlatent - hand: "
                 f"{statistics.mean(elbos['genlatent']) - statistics.mean(elbos['hand']):+.2f} "
                 f"nats (round-to-round spread of the hand loop: {spread:.2f}).")
    lines.append(f"Load average at the end (1 min): {os.getloadavg()[0]:.1f} on "
                 f"{os.cpu_count()} cores.")
    body = "\n".join(lines)
    print("\n" + body)
    if not args.no_report:
        name = "trainer" + ("_cnn" if args.cnn else "") + ("" if device == "cpu" else "_gpu")
        write_section(name, f"Trainer overhead ({'CNN' if args.cnn else 'MLP'} VAE, {device})",
                      body)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
