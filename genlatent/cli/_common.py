"""What every command shares: progress on stderr, results on stdout, common options."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def progress(message: str) -> None:
    """A progress line on stderr (stdout is kept for results)."""
    click.echo(message, err=True)


def emit_json(obj: Any) -> None:
    """One JSON object on one stdout line."""
    click.echo(json.dumps(obj, sort_keys=True, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def device_option(func: F) -> F:
    """``--device auto|cpu|cuda|cuda:N|mps``."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="Where to compute: auto (GPU when there is one), cpu, cuda, cuda:N, mps.",
    )(func)


def int_option(*names: str, default: int, minimum: int, help: str) -> Callable[[F], F]:  # noqa: A002
    """An integer option with a floor and its default shown in ``--help`` (the commands' usual
    counts: samples, points, steps, ...)."""
    return click.option(
        *names, type=click.IntRange(min=minimum), default=default, show_default=True, help=help
    )


def seed_option(help: str = "Seed of the draws.") -> Callable[[F], F]:  # noqa: A002
    """``--seed`` (default 0): the same seed, the same draws."""
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


def color_by_option(help: str) -> Callable[[F], F]:  # noqa: A002
    """``--color-by LABEL`` (stored as ``label``): the 1-D dataset a latent picture is
    coloured by."""
    return click.option("--color-by", "label", default=None, metavar="LABEL", help=help)


def out_folder_option(help: str) -> Callable[[F], F]:  # noqa: A002
    """``--out DIR`` as a :class:`~pathlib.Path`, None when not given (the command's default)."""
    return click.option(
        "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help=help
    )


def batch_size_option(default: int = 256) -> Callable[[F], F]:
    return int_option("--batch-size", default=default, minimum=1, help="Examples per forward pass.")


def resolve_device(name: str) -> str:
    """``auto`` -> a GPU when there is one, else the CPU; other names are checked (the
    trainer's rule, so every command picks the same device)."""
    from ..training.trainer import resolve_device as trainer_device

    return str(trainer_device(name))


def run_argument(func: F) -> F:
    return click.argument("run", type=click.Path(path_type=str))(func)


def key_option(func: F) -> F:
    return click.option(
        "--key",
        default=None,
        help="HDF5 dataset key of the examples.  [default: the run's training key, or x]",
    )(func)


def load_model(run: str, device: str) -> Any:
    """The trained model of a run (or model) folder on ``device`` (``auto`` resolved)."""
    from ..analysis.runs import load_run_model

    return load_run_model(run, resolve_device(device))


def default_key(run: str) -> str | None:
    """The data key a run was trained with (its config.json), else None (the file type's
    default: ``x``, or ``X`` for ``.h5ad``)."""
    from pathlib import Path

    from ..analysis.runs import CONFIG_FILE, read_json, run_dir

    folder = run_dir(Path(run))
    config = read_json(folder / CONFIG_FILE) if folder is not None else None
    if isinstance(config, dict):
        key = (config.get("data") or {}).get("key")
        if isinstance(key, str):
            return key
    return None


def seeded(seed: int, device: Any = None) -> Any:
    """A block with every RNG seeded, the caller's states restored (see genlatent.runs)."""
    from ..runs import seeded as run_seeded

    return run_seeded(seed, device)


def open_dataset(path: str, key: str | None, labels: bool | str | None = None) -> Any:
    """An HDF5 (or ``.h5ad``) dataset; ``labels=True`` loads every aligned 1-D dataset."""
    from ..data import open_dataset as open_data

    return open_data(path, key, labels=labels)
