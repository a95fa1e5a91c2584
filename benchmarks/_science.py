"""Shared pieces of the science benchmarks (Ising, Fashion-MNIST, MOSES).

Why a module: the three scripts train models the same way (a time-boxed loop over
``model.loss``), read latent means the same way and describe their run the same way.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]


def common_flags(parser: argparse.ArgumentParser, *, epochs: int, minutes: float) -> None:
    """The flags every science script takes."""
    parser.add_argument("--epochs", type=int, default=epochs, help="training epochs per model")
    parser.add_argument(
        "--minutes",
        "--time-budget",
        dest="minutes",
        type=float,
        default=minutes,
        help="wall-clock training budget in minutes per model (stops early when reached)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (seconds)")
    parser.add_argument("--out", default=None, help="folder for plots and models")
    parser.add_argument(
        "--no-report", action="store_true", help="do not write the BENCHMARKS.md section"
    )


def setup(args: argparse.Namespace) -> torch.device:
    """Seed, thread count and device from the common flags."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, args.threads))
    return torch.device(args.device)


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Shuffled index batches over ``range(n)`` (one epoch)."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train(
    model: torch.nn.Module,
    make_batch: Callable[[Tensor], dict[str, Tensor]],
    n: int,
    *,
    epochs: int,
    minutes: float,
    batch_size: int,
    lr: float,
    seed: int,
    log_every: float = 30.0,
    label: str = "",
) -> dict[str, float]:
    """Adam over ``model.loss`` for ``epochs`` epochs or ``minutes``, whichever ends first.

    A plain loop rather than :class:`genlatent.Trainer` so that each benchmark controls the
    exact budget; the loss itself is the model's own (``model.loss(batch, step)``).
    Returns the epochs run, steps, seconds and the last epoch's mean metrics.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    deadline = start + 60.0 * minutes
    step = 0
    last_log = start
    epoch_metrics: dict[str, float] = {}
    epochs_run = 0.0
    model.train()
    stop = False
    for epoch in range(epochs):
        sums: dict[str, float] = {}
        count = 0
        n_batches = math.ceil(n / batch_size)
        for i, index in enumerate(batches(n, batch_size, generator)):
            loss, metrics = model.loss(make_batch(index), step)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
            optimiser.step()
            step += 1
            count += 1
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            now = time.perf_counter()
            if now - last_log > log_every:
                last_log = now
                shown = " ".join(f"{k}={v / count:.3f}" for k, v in sorted(sums.items()))
                where = f"epoch {epoch + 1} batch {i + 1}/{n_batches}"
                print(f"  [{label}] {where} {shown}", flush=True)
            if now > deadline:
                stop = True
                epochs_run = epoch + (i + 1) / n_batches
                break
        epoch_metrics = {k: v / max(count, 1) for k, v in sums.items()}
        if stop:
            break
        epochs_run = epoch + 1
        shown = " ".join(f"{k}={v:.3f}" for k, v in sorted(epoch_metrics.items()))
        print(f"  [{label}] epoch {epoch + 1}/{epochs} {shown}", flush=True)
    model.eval()
    return {
        "epochs": float(epochs_run),
        "steps": float(step),
        "seconds": time.perf_counter() - start,
        **{f"train_{k}": v for k, v in epoch_metrics.items()},
    }


def fit_trainer(
    model: torch.nn.Module,
    train_data,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
    out_dir: Path,
    minutes: float | None = None,
) -> dict[str, float]:
    """Train with :class:`genlatent.Trainer` (block-shuffle loader, run folder, checkpoints).

    ``minutes``: stop after the epoch during which the budget runs out. Returns the same keys
    as :func:`train`: epochs, steps, seconds, train_<metric>.
    """
    import genlatent
    from genlatent.training.callbacks import Callback

    class TimeBudget(Callback):
        def __init__(self) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, trainer, metrics) -> None:  # noqa: ANN001
            if minutes and time.perf_counter() - self.start > 60.0 * minutes:
                trainer.should_stop = True
                trainer.stop_reason = f"time budget of {minutes:g} min reached"

    trainer = genlatent.Trainer(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=str(device),
        out_dir=out_dir,
        overwrite=True,
        progress=False,
        tensorboard=False,
        checkpoint_every=None,
        callbacks=["print_metrics", TimeBudget()],
    )
    start = time.perf_counter()
    record = trainer.fit(model, train_data)
    model.eval()
    out = {
        "epochs": float(record.get("epoch", epochs)),
        "steps": float(record.get("step", 0)),
        "seconds": time.perf_counter() - start,
    }
    out.update({k: float(v) for k, v in record.items() if k.startswith("train_")})
    return out


@torch.no_grad()
def latent_mean(model: torch.nn.Module, x: Tensor, lengths: Tensor | None = None) -> Tensor:
    """The posterior mean (VAE) or the code (AE) of ``x``: ``(B, latent_dim)``."""
    return model.encode_mean(x, lengths)


def load_recipe(name: str):
    """A ``datasets/<name>.py`` recipe as a module (the folder is not a package)."""
    import importlib.util

    path = ROOT / "datasets" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"genlatent_recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@torch.no_grad()
def in_batches(fn: Callable[[Tensor], Tensor], n: int, batch_size: int) -> Tensor:
    """``fn(index)`` over ``range(n)`` in order, concatenated on the first axis."""
    out = [fn(torch.arange(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    return torch.cat(out)


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def ising_data(path: Path, size: int, temperatures: np.ndarray, samples: int, seed: int) -> float:
    """Simulate Ising configurations into ``path`` with the recipe ``datasets/ising.py``,
    unless it already holds these settings; returns the seconds spent."""
    temperatures = np.asarray(temperatures, dtype=np.float64)
    if path.exists():
        with h5py.File(path, "r") as f:
            stored = np.asarray(f.attrs.get("temperatures", []), dtype=np.float64)
            same = (
                f.attrs.get("L") == size
                and f.attrs.get("seed") == seed
                and stored.shape == temperatures.shape
                and np.allclose(stored, temperatures, atol=1e-6)
                and f["x"].shape[0] == len(temperatures) * samples
            )
        if same:
            return 0.0
    ising = load_recipe("ising")
    start = time.perf_counter()
    result = ising.simulate(size, temperatures, samples, seed=seed)
    ising.write_h5(
        path, result, seed=seed, equilibrate=200, decorrelate=10, chains_per_temperature=4
    )
    return time.perf_counter() - start
